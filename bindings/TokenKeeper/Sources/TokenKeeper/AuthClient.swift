// Hand-written Swift API over the generated native handles (TokenKeeper.swift).

import Foundation

/// One authorization server and one OAuth client, with its sessions: at most one
/// active token per identity. Create one per server for the app's lifetime.
///
/// ```swift
/// let client = try AuthClient(config: AuthConfig(tokenEndpoint: "https://as.example.com/oauth2/token",
///                                                clientId: "my-app", scopes: ["read"]),
///                             store: KeychainStore(service: "com.example.app.tokenkeeper"))
/// Task { for await identity in client.reauthenticationRequired() { showLogin(for: identity) } }
/// ```
public final class AuthClient: @unchecked Sendable {
    /// The generated handle, for calls this class does not wrap.
    public let native: NativeAuthClient
    private let relay: EventRelay
    private let clock: ManualClock?
    private let rotation: TokenRotation?
    private let dpop: Bool
    private let lock = NSLock()
    private var sessions: [Int64: Session] = [:]

    /// Validates `config` and creates the client (no network traffic yet). `clock` is
    /// for tests only: a `ManualClock` the core and the token mirrors read instead of
    /// the device's clock. Every request the SDK sends goes through `transport`: by
    /// default a `URLSessionTransport` on a session of its own; pass one over the app's
    /// `URLSession` so its configuration (proxy, App Transport Security, a delegate
    /// that pins certificates) applies. `nil` uses the Rust library's built-in stack,
    /// which the iOS library, built without it, does not have. With DPoP on, set
    /// `AuthConfig(…, dpopKeys: SecureEnclaveDpopKeys())` so every sign-in's key is in the
    /// Secure Enclave and the record keeps only its alias and thumbprint.
    /// - Throws: `AuthError.invalidConfig` for an unusable config.
    public init(
        config: AuthConfig, store: TokenStore? = nil, listener: AuthEventListener? = nil, clock: ManualClock? = nil,
        transport: HttpTransport? = URLSessionTransport()
    ) throws {
        let relay = EventRelay(app: listener)
        self.relay = relay
        self.clock = clock
        self.rotation = config.tokenRotation
        self.dpop = config.dpop.map { $0 != .off } ?? false
        self.native = try mappingErrorsSync { try NativeAuthClient(config: config, store: store, listener: relay, clock: clock, transport: transport) }
    }

    private init(native: NativeAuthClient, relay: EventRelay, clock: ManualClock?, rotation: TokenRotation?, dpop: Bool) {
        self.native = native
        self.relay = relay
        self.clock = clock
        self.rotation = rotation
        self.dpop = dpop
    }

    /// A client configured from the authorization server's metadata (RFC 8414, then
    /// OpenID Connect discovery) fetched through `transport`: its endpoints, its issuer
    /// (redirects are then checked against it, RFC 9207) and its key set. Every other
    /// setting comes from `settings` (its endpoints, issuer and client id are ignored).
    /// - Throws: `AuthError.issuerMismatch` (the metadata names another issuer),
    ///   `.invalidResponse` (no metadata), `.temporarilyUnavailable`.
    public static func discover(
        issuer: String, clientId: String, settings: AuthConfig? = nil, store: TokenStore? = nil,
        listener: AuthEventListener? = nil, clock: ManualClock? = nil, transport: HttpTransport? = URLSessionTransport()
    ) async throws -> AuthClient {
        let relay = EventRelay(app: listener)
        let native = try await mappingErrors {
            try await discoverAuthClient(issuer: issuer, clientId: clientId, settings: settings, store: store,
                                         listener: relay, clock: clock, transport: transport)
        }
        // As the Kotlin client: DPoP proofs when the settings turn it on.
        let dpop = settings?.dpop.map { $0 != .off } ?? false
        return AuthClient(native: native, relay: relay, clock: clock, rotation: settings?.tokenRotation, dpop: dpop)
    }

    /// "This identity needs the user": the identity of each session whose credentials
    /// were all rejected. Route to the login screen from here. Each call makes a new stream.
    public func reauthenticationRequired() -> AsyncStream<String> { relay.stream() }

    /// The client's own session (client-credentials grant, RFC 6749 §4.4).
    public func clientCredentialsSession() -> Session { wrap(native.clientCredentialsSession()) }

    /// Signs `username` in with the password grant (RFC 6749 §4.3); the password stays
    /// in the Rust core's memory only.
    public func login(username: String, password: String) async throws -> Session {
        wrap(try await mappingErrors { try await native.login(username: username, password: password) })
    }

    /// The signed-in session of `account`, if any: the same object the sign-in returned.
    public func session(account: String) -> Session? { native.session(username: account).map(wrap) }

    /// After a restart: the session of `account` from the refresh token in the store.
    public func restore(account: String) async throws -> Session {
        wrap(try await mappingErrors { try await native.restore(username: account) })
    }

    /// The old label of `session(account:)`.
    @available(*, deprecated, renamed: "session(account:)", message: "one name for the account across the SDK")
    public func session(username: String) -> Session? { session(account: username) }

    /// The old label of `restore(account:)`.
    @available(*, deprecated, renamed: "restore(account:)", message: "one name for the account across the SDK")
    public func restore(username: String) async throws -> Session { try await restore(account: username) }

    /// Starts a browser sign-in (authorization code with PKCE S256 and a fresh `state`,
    /// RFC 7636, RFC 8252) for the user the app calls `account` (the session's
    /// `account()`). Open `pending.url()` with `ASWebAuthenticationSession` (never a
    /// `WKWebView`) and keep `pending` until the redirect arrives: the PKCE verifier lives
    /// only in it. `scopes` replaces the config's; `extraParams` adds query parameters
    /// such as `prompt` or `login_hint`; `nonce` asks for an OpenID Connect nonce
    /// (implied by `openid` in scope); `options` sets `maxAge`, `prompt`, `loginHint`
    /// and `acrValues` (a stronger login, RFC 9470), whose `auth_time` is then checked.
    /// - Throws: `AuthError.invalidConfig` without an `authorizationEndpoint` or with a bad redirect URI.
    public func authorizationRequest(
        account: String,
        redirectUri: String,
        scopes: [String]? = nil,
        extraParams: [String: String] = [:],
        nonce: Bool = false,
        options: SignInOptions? = nil
    ) throws -> PendingAuthorization {
        try mappingErrorsSync {
            try native.authorizationRequest(
                account: account, redirectUri: redirectUri, scopes: scopes, extraParams: extraParams, nonce: nonce,
                options: options)
        }
    }

    /// Finishes a browser sign-in with the URL the browser was redirected to and returns
    /// the user's `Session`, registered like one from `login`.
    /// - Throws: `AuthError.stateMismatch` (a redirect of another attempt; nothing was
    ///   exchanged), `.issuerMismatch` (RFC 9207), `.accessDenied`, `.invalidRedirect`,
    ///   `.invalidGrant` (a spent or foreign code).
    public func completeAuthorization(pending: PendingAuthorization, redirectUrl: String) async throws -> Session {
        wrap(try await mappingErrors { try await native.completeAuthorization(pending: pending, redirectUrl: redirectUrl) })
    }

    /// The sign-in as an opaque string that survives the app being terminated while the
    /// browser sheet is open: its PKCE verifier, `state`, `nonce` and DPoP key are sealed
    /// (AES-256-GCM) under a key kept in this client's `TokenStore`. Complete it with
    /// `completeSavedAuthorization(saved:redirectUrl:)` within 15 minutes, once.
    /// - Throws: `AuthError.invalidConfig` without a store.
    public func saveAuthorization(pending: PendingAuthorization) async throws -> String {
        try await mappingErrors { try await native.saveAuthorization(pending: pending) }
    }

    /// Finishes a saved sign-in, possibly in a new process.
    /// - Throws: `AuthError.savedSignInRefused` (expired, completed already, unreadable,
    ///   key gone; nothing was sent), and `completeAuthorization`'s errors.
    public func completeSavedAuthorization(saved: String, redirectUrl: String) async throws -> Session {
        wrap(try await mappingErrors { try await native.completeSavedAuthorization(saved: saved, redirectUrl: redirectUrl) })
    }

    /// Starts a device sign-in (RFC 8628) for `account`: show `device.userCode()` and
    /// `device.verificationUri()`, then call `completeDeviceAuthorization(device:)`.
    public func startDeviceAuthorization(account: String, scopes: [String]? = nil) async throws -> DeviceAuthorization {
        try await mappingErrors { try await native.startDeviceAuthorization(account: account, scopes: scopes) }
    }

    /// Polls (in Rust, honouring the server's `interval` and `slow_down`) until the user
    /// approves, then returns the `Session`. Cancelling the Swift `Task` does not stop the
    /// polling; `device.cancel()` does.
    /// - Throws: `AuthError.accessDenied`, `.deviceCodeExpired` (start again) or `.cancelled`.
    public func completeDeviceAuthorization(device: DeviceAuthorization) async throws -> Session {
        wrap(try await mappingErrors { try await native.completeDeviceAuthorization(device: device) })
    }

    /// A `Session` for `account` from tokens the app already holds (another SDK signed the
    /// user in, or an older app version stored them); no network traffic. The refresh
    /// token, if any, goes to the `TokenStore`.
    public func importTokens(account: String, tokens: ImportedTokens, scopes: [String]? = nil) async throws -> Session {
        wrap(try await mappingErrors { try await native.importTokens(account: account, tokens: tokens, scopes: scopes) })
    }

    // One Session (one mirror, one observer) per core session.
    private func wrap(_ handle: NativeSession) -> Session {
        let id = handle.instanceId()
        lock.lock()
        if let existing = sessions[id] {
            lock.unlock()
            return existing
        }
        let created = Session(native: handle, clock: clock, rotation: rotation, dpop: dpop) { [weak self] session in
            guard let self else { return }
            self.lock.lock()
            if self.sessions[id] === session { self.sessions[id] = nil }
            self.lock.unlock()
        }
        sessions[id] = created
        lock.unlock()
        return created.start()
    }
}

/// Forwards events to the app's listener and feeds `AuthClient.reauthenticationRequired()`.
final class EventRelay: AuthEventListener, @unchecked Sendable {
    private let app: AuthEventListener?
    private let lock = NSLock()
    private var continuations: [UUID: AsyncStream<String>.Continuation] = [:]

    init(app: AuthEventListener?) {
        self.app = app
    }

    func stream() -> AsyncStream<String> {
        AsyncStream(bufferingPolicy: .bufferingNewest(16)) { continuation in
            let id = UUID()
            lock.lock()
            continuations[id] = continuation
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.lock()
                self.continuations[id] = nil
                self.lock.unlock()
            }
        }
    }

    func onEvent(event: AuthEvent) throws {
        if case let .reauthenticationRequired(identity, _) = event {
            lock.lock()
            let targets = Array(continuations.values)
            lock.unlock()
            for continuation in targets {
                continuation.yield(identity)
            }
        }
        try app?.onEvent(event: event)
    }
}
