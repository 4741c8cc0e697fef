// Hand-written Swift API over the generated native handles (TokenKeeper.swift, never
// edited). The token logic stays in Rust; this file keeps a lock-protected copy of the
// token that the core keeps current, so a warm read never crosses the FFI.

import Foundation

/// One identity (the client, or one user) and its token. Get it from `AuthClient`,
/// which returns the same `Session` object for the same identity.
///
/// While the cached token is fresh, `cachedAccessToken()` and `accessToken()` are served
/// from a mirror that the Rust core updates synchronously at every change (issued,
/// refreshed, rotated, recovered, invalidated, logged out). Past its refresh time they
/// ask the core, so the refresh margin, background refresh and single flight stay in Rust.
public final class Session: @unchecked Sendable, Equatable, Hashable {
    /// The generated handle, for calls this class does not wrap.
    public let native: NativeSession
    private let mirror: TokenMirror
    /// The client's test clock, if it has one; the device's clock otherwise.
    private let clock: ManualClock?
    /// The response headers of per-response token rotation, if the config enables it.
    let rotation: TokenRotation?
    /// Whether the client sends DPoP proofs (`AuthConfig.dpop` is not off).
    let dpop: Bool
    private let onLogout: @Sendable (Session) -> Void

    init(
        native: NativeSession,
        clock: ManualClock? = nil,
        rotation: TokenRotation? = nil,
        dpop: Bool = false,
        onLogout: @escaping @Sendable (Session) -> Void = { _ in }
    ) {
        self.native = native
        self.mirror = TokenMirror(initial: native.state())
        self.clock = clock
        self.rotation = rotation
        self.dpop = dpop
        self.onLogout = onLogout
    }

    private func now() -> Date {
        guard let clock else { return Date() }
        return Date(timeIntervalSince1970: TimeInterval(clock.nowEpochMillis()) / 1000)
    }

    /// Starts the mirror; separate from `init` so a duplicate wrapper registers nothing.
    func start() -> Session {
        native.observe(observer: mirror)
        return self
    }

    public static func == (lhs: Session, rhs: Session) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// Who this session is: `client` or `user:alice`, then any non-default scope, audience or resource.
    public func identity() -> String { native.identity() }

    /// The account name the app gave this user session (sign-in, `login`, `restore`);
    /// `nil` for the client's own session.
    public func account() -> String? { native.account() }

    /// The old name of `account()`.
    @available(*, deprecated, renamed: "account()", message: "one name for the account across the SDK")
    public func username() -> String? { account() }

    /// Where the session stands now.
    public var state: SessionState { mirror.currentState }

    /// The session's states: the current one at once, then every change (signed in
    /// with expiry, re-authentication required, logged out). Each call makes a new stream.
    /// It stays `.signedIn` through a silent recovery: between two tokens it keeps the
    /// last token's expiry rather than showing `.signedIn(nil, nil)` (only `invalidate()` does).
    public func stateUpdates() -> AsyncStream<SessionState> { mirror.stream() }

    /// The cached token while it is fresh (no FFI call), else the core's answer
    /// (`nil`: call `accessToken()`).
    public func cachedAccessToken() -> AccessToken? {
        mirror.fresh(at: now()) ?? native.cachedAccessToken()
    }

    /// A valid access token: from the mirror while fresh, otherwise from the core (one
    /// token request for all concurrent callers).
    public func accessToken() async throws -> AccessToken {
        if let token = mirror.fresh(at: now()) { return token }
        return try await mappingErrors { try await native.accessToken() }
    }

    /// A token valid for at least `minValidity` seconds (Auth0's `minTtl`): refreshes
    /// first if the cached one expires sooner.
    public func accessToken(minValidity: TimeInterval) async throws -> AccessToken {
        let current = now()
        if let token = mirror.fresh(at: current), token.expiresAt.timeIntervalSince(current) >= minValidity {
            return token
        }
        return try await mappingErrors { try await native.accessTokenValidFor(minValidity: minValidity) }
    }

    /// A new token now, whatever the cache holds (joining a token request in flight).
    public func refresh() async throws -> AccessToken {
        try await mappingErrors { try await native.refresh() }
    }

    /// Waits until the token request in flight (such as a background refresh), if any, has finished.
    public func waitForRefresh() async {
        await native.waitForRefresh()
    }

    /// Per-response token rotation (`AuthConfig.tokenRotation`) for apps with their own
    /// HTTP stack: hands the session an API response's headers (name to value) so it
    /// adopts the rotated token they carry, if it is newer than the one it holds. The
    /// mirror shows it when this returns. `URLSession.data(for:authorizedBy:)` does this by itself.
    public func observeResponseHeaders(_ headers: [String: String]) {
        native.observeResponseHeaders(headers: headers)
    }

    /// For apps with their own HTTP stack: the `Authorization` value and, for a DPoP
    /// token, the `DPoP` proof for one `method` request to `url` (RFC 9449; single use,
    /// ask again for every request and retry). `URLSession.data(for:authorizedBy:)` does
    /// this by itself.
    public func authorizationHeaders(method: String, url: String) async throws -> AuthorizationHeaders {
        try await mappingErrors { try await native.authorizationHeaders(method: method, url: url) }
    }

    /// Hands over a `DPoP-Nonce` response header from `url`'s server: the next proof for
    /// that origin carries it.
    public func dpopNonceReceived(url: String, nonce: String) {
        native.dpopNonceReceived(url: url, nonce: nonce)
    }

    /// After a resource server answered 401 to a request made with `failedToken`: a token
    /// to retry with (once), or `nil` when the 401 is not about the token.
    public func handleUnauthorized(failedToken: AccessToken, wwwAuthenticate: [String]) async throws -> AccessToken? {
        try await mappingErrors { try await native.handleUnauthorized(failedToken: failedToken, wwwAuthenticate: wwwAuthenticate) }
    }

    /// As above, for a caller that kept only the token's value (what followed `Bearer `).
    public func handleUnauthorized(failedToken: String, wwwAuthenticate: [String]) async throws -> AccessToken? {
        try await mappingErrors { try await native.handleUnauthorizedValue(failedToken: failedToken, wwwAuthenticate: wwwAuthenticate) }
    }

    /// Drops the cached token (told out of band it is no longer good). The mirror is
    /// empty when this returns.
    public func invalidate() {
        mirror.clear()
        native.invalidate()
    }

    /// Revokes the tokens (RFC 7009) and forgets them. The mirror is empty before the
    /// network call starts.
    public func logout() async throws {
        mirror.clear()
        defer { onLogout(self) }
        try await mappingErrors { try await native.logout() }
    }
}

/// The Swift copy of one session's token: replaced under a lock, only by a newer
/// generation. Registered with the core as the session's `TokenObserver`; it holds no
/// reference to the session, so a finished session can be freed.
final class TokenMirror: TokenObserver, @unchecked Sendable {
    private let lock = NSLock()
    private var generation = Int64.min
    private var token: AccessToken?
    private var freshUntil = Date.distantPast
    private var state: SessionState
    // Set by the app's own invalidate() or logout(): the empty state that follows is news
    // to show, not a step between two tokens.
    private var cleared = false
    private var continuations: [UUID: AsyncStream<SessionState>.Continuation] = [:]

    init(initial: SessionState) {
        state = initial
    }

    func fresh(at now: Date) -> AccessToken? {
        lock.lock()
        defer { lock.unlock() }
        return now < freshUntil ? token : nil
    }

    var currentState: SessionState {
        lock.lock()
        defer { lock.unlock() }
        return state
    }

    func clear() {
        lock.lock()
        defer { lock.unlock() }
        token = nil
        freshUntil = .distantPast
        cleared = true
    }

    func stream() -> AsyncStream<SessionState> {
        AsyncStream { continuation in
            let id = UUID()
            lock.lock()
            continuations[id] = continuation
            continuation.yield(state)
            lock.unlock()
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.lock()
                self.continuations[id] = nil
                self.lock.unlock()
            }
        }
    }

    func onTokenChange(change: TokenChange) throws {
        lock.lock()
        defer { lock.unlock() }
        // The core delivers in generation order; the check keeps a stale copy out anyway.
        guard change.generation > generation else { return }
        generation = change.generation
        token = change.token
        freshUntil = change.token == nil
            ? .distantPast
            : change.freshUntilEpochMillis.map { Date(timeIntervalSince1970: TimeInterval($0) / 1000) } ?? .distantPast
        let next = cleared ? change.state : steady(current: state, next: change.state)
        cleared = false
        if next != state {
            state = next
            for continuation in continuations.values {
                continuation.yield(next)
            }
        }
    }
}

/// The state to show after `next`: between two tokens of its own (a silent recovery, a
/// refresh) the core passes through "signed in, no token cached"; a bound UI would
/// flicker on it. So a `.signedIn` without expiry that follows one with an expiry keeps
/// the last expiry until the next token (or `.reauthenticationRequired`, `.loggedOut`).
/// The app's own `invalidate()` still shows the empty state (`clear()` bypasses this).
func steady(current: SessionState, next: SessionState) -> SessionState {
    if case .signedIn(_, nil) = next, case .signedIn(_, .some) = current {
        return current
    }
    return next
}
