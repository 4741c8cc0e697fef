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
    private let lock = NSLock()
    private var sessions: [Int64: Session] = [:]

    /// Validates `config` and creates the client (no network traffic yet).
    /// - Throws: `AuthError.invalidConfig` for an unusable config.
    public init(config: AuthConfig, store: TokenStore? = nil, listener: AuthEventListener? = nil) throws {
        let relay = EventRelay(app: listener)
        self.relay = relay
        self.native = try mappingErrorsSync { try NativeAuthClient(config: config, store: store, listener: relay) }
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

    /// The signed-in session of `username`, if any: the same object `login` returned.
    public func session(username: String) -> Session? { native.session(username: username).map(wrap) }

    /// After a restart: the session of `username` from the refresh token in the store.
    public func restore(username: String) async throws -> Session {
        wrap(try await mappingErrors { try await native.restore(username: username) })
    }

    // One Session (one mirror, one observer) per core session.
    private func wrap(_ handle: NativeSession) -> Session {
        let id = handle.instanceId()
        lock.lock()
        if let existing = sessions[id] {
            lock.unlock()
            return existing
        }
        let created = Session(native: handle) { [weak self] session in
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
