// The Swift bindings end to end: generated code → TokenKeeperFFI (Rust static
// library) → Rust core → HTTP → tokenkeeper-devserver. Mirrors the Kotlin JVM tests
// (bindings/kotlin/src/test/kotlin/dev/tokenkeeper/TokenKeeperTest.kt): each test
// resets the server's statistics and uses its own AuthClient, so the server's call
// counts are the assertions.
//
// Run on macOS:
//   cargo build -p tokenkeeper-devserver
//   scripts/build-xcframework.sh --macos-only
//   swift test   # at the repository root
//
// Shipped for macOS and NOT executed on tokenkeeper's Linux development machines or
// CI (no Swift toolchain there): only their syntax is checked, by
// scripts/check-swift.sh. See docs/ios.md.

import Foundation
import XCTest
@testable import TokenKeeper

final class TokenKeeperTests: XCTestCase {

    /// One server for the whole class, started on first use and stopped in `tearDown()`.
    private static let sharedServer = Result { try DevServer.start() }

    private var server: DevServer!

    override class func tearDown() {
        if case let .success(server) = sharedServer {
            server.stop()
        }
        super.tearDown()
    }

    override func setUp() async throws {
        server = try Self.sharedServer.get()
        try await server.clearFaults()
        try await server.resetStats()
    }

    private func config(
        clientSecret: String? = "demo-secret",
        tokenEndpoint: String? = nil
    ) -> AuthConfig {
        AuthConfig(
            tokenEndpoint: tokenEndpoint ?? server.tokenEndpoint,
            clientId: "demo-client",
            clientSecret: clientSecret,
            revocationEndpoint: server.revocationEndpoint,
            scopes: ["read"]
        )
    }

    /// The devserver's origin is the only one allowed to receive the token.
    private func api(_ session: Session) throws -> TokenKeeperAuthorization {
        try TokenKeeperAuthorization(session: session, allowedHosts: [server.baseURL.absoluteString])
    }

    // MARK: - Tokens

    func testClientCredentialsSessionGetsATokenWithValueExpiryAndScopes() async throws {
        let client = try AuthClient(config: config())

        let token = try await client.clientCredentialsSession().accessToken()

        XCTAssertFalse(token.value.isEmpty)
        XCTAssertGreaterThan(token.expiresAtEpochSeconds, Int64(Date().timeIntervalSince1970))
        XCTAssertEqual(token.scopes, ["read"])
        XCTAssertFalse(String(reflecting: token).contains(token.value), "debugDescription must redact the token")
        XCTAssertFalse(String(describing: token).contains(token.value), "description must redact the token")
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "client_credentials"), 1, "\(stats)")
    }

    func testLoginReturnsTheUsersSessionRegisteredOncePerIdentity() async throws {
        let client = try AuthClient(config: config())

        let session = try await client.login(username: "alice", password: "alice-password")

        XCTAssertEqual(session.account(), "alice")
        XCTAssertTrue(session.identity().hasPrefix("user:alice"), session.identity())
        let token = try await session.accessToken()
        XCTAssertFalse(token.value.isEmpty)
        XCTAssertEqual(client.session(account: "alice"), session)
        XCTAssertNil(client.session(account: "bob"))
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "password"), 1, "\(stats)")
    }

    func test100ConcurrentAccessTokenCallsShareExactlyOneTokenRequest() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()

        let values = try await withThrowingTaskGroup(of: String.self, returning: Set<String>.self) { group in
            for _ in 0..<100 {
                group.addTask { try await session.accessToken().value }
            }
            var values = Set<String>()
            for try await value in group {
                values.insert(value)
            }
            return values
        }

        XCTAssertEqual(values.count, 1)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "\(stats)")
    }

    // MARK: - URLSession sugar

    func testRevokedTokenIsRecoveredThroughURLSessionWithOneTokenRequest() async throws {
        let session = try await AuthClient(config: config()).login(username: "alice", password: "alice-password")
        let me = URLRequest(url: server.resourceURL("me"))
        let (_, first) = try await URLSession.shared.data(for: me, authorizedBy: api(session))
        XCTAssertEqual((first as? HTTPURLResponse)?.statusCode, 200)

        try await server.revokeSubject("alice")
        try await server.resetStats()
        let (body, second) = try await URLSession.shared.data(for: me, authorizedBy: api(session))

        XCTAssertEqual((second as? HTTPURLResponse)?.statusCode, 200, String(decoding: body, as: UTF8.self))
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "one re-authentication: \(stats)")
        XCTAssertEqual(stats.resourceRequests, 2, "the 401, then the replay: \(stats)")
    }

    func testURLSessionRenewsButDoesNotReplayAPostAfterA401() async throws {
        let session = try await AuthClient(config: config()).login(username: "alice", password: "alice-password")
        let before = try await session.accessToken()
        try await server.revokeSubject("alice")
        try await server.resetStats()

        var post = URLRequest(url: server.resourceURL("orders"))
        post.httpMethod = "POST"
        post.setValue("application/json", forHTTPHeaderField: "Content-Type")
        post.httpBody = Data("{}".utf8)
        let (_, response) = try await URLSession.shared.data(for: post, authorizedBy: api(session))

        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 401, "the 401 is returned, not thrown")
        let after = try await session.accessToken()
        XCTAssertNotEqual(after.value, before.value, "the token was renewed for the next request")
        let stats = try await server.stats()
        XCTAssertEqual(stats.resourceRequests, 1, "no replay: \(stats)")
        XCTAssertEqual(stats.tokenRequests, 1, "\(stats)")
    }

    // MARK: - Typed errors

    func testWrongClientSecretThrowsInvalidClient() async throws {
        let session = try AuthClient(config: config(clientSecret: "wrong-secret")).clientCredentialsSession()

        let error = await thrownError { try await session.accessToken() }

        guard case let .invalidClient(message: message)? = error as? AuthError else {
            return XCTFail("expected AuthError.invalidClient, got \(String(describing: error))")
        }
        XCTAssertFalse(message.contains("wrong-secret"), message)
    }

    func testUnreachableServerThrowsTemporarilyUnavailable() async throws {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        var unreachable = self.config(tokenEndpoint: "http://127.0.0.1:1/oauth2/token")
        unreachable.retryPolicy = RetryPolicy(maxAttempts: 2, initialBackoff: 0.01, maxBackoff: 0.01, deadline: 5)
        unreachable.connectTimeout = 2
        let session = try AuthClient(config: unreachable).clientCredentialsSession()

        let error = await thrownError { try await session.accessToken() }

        guard case .temporarilyUnavailable? = error as? AuthError else {
            return XCTFail("expected AuthError.temporarilyUnavailable, got \(String(describing: error))")
        }
    }

    func testInvalidConfigThrowsInvalidConfigFromTheInitializer() throws {
        // Plain http is allowed on loopback only.
        XCTAssertThrowsError(try AuthClient(config: config(tokenEndpoint: "http://as.example.com/oauth2/token"))) {
            guard case .invalidConfig? = $0 as? AuthError else {
                return XCTFail("expected AuthError.invalidConfig, got \($0)")
            }
        }
    }

    // MARK: - Swift TokenStore

    func testSwiftTokenStoreReceivesTheRefreshTokenAndRestoresTheSession() async throws {
        let store = DictionaryStore()
        _ = try await AuthClient(config: config(), store: store).login(username: "alice", password: "alice-password")

        let saved = store.snapshot()
        XCTAssertEqual(saved.count, 1, "one refresh token saved: \(saved.keys)")
        let (key, refreshToken) = try XCTUnwrap(saved.first)
        XCTAssertFalse(refreshToken.isEmpty)
        XCTAssertFalse(key.contains("alice-password") || key.contains("demo-secret"), key)

        // A new client (an app restart) with the same store: no password needed.
        try await server.resetStats()
        let restored = try await AuthClient(config: config(), store: store).restore(account: "alice")
        let token = try await restored.accessToken()
        XCTAssertFalse(token.value.isEmpty)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "password"), 0, "\(stats)")
    }

    func testTokenStoreThatThrowsSurfacesAsATypedErrorNotACrash() async throws {
        let client = try AuthClient(config: config(), store: FailingStore())

        let error = await thrownError { try await client.restore(account: "alice") }

        // The store's failure is reported as such (not as "sign in again"): the
        // refresh token may still be there once the keychain is readable.
        guard case .storage? = error as? AuthError else {
            return XCTFail("expected AuthError.storage, got \(String(describing: error))")
        }
    }

    // MARK: - AuthEventListener

    func testEventsReachASwiftListener() async throws {
        let listener = RecordingListener()
        let client = try AuthClient(config: config(), listener: listener)

        _ = try await client.clientCredentialsSession().accessToken()
        let error = await thrownError { try await client.login(username: "bob", password: "not-bobs-password") }
        guard case .invalidGrant? = error as? AuthError else {
            return XCTFail("expected AuthError.invalidGrant, got \(String(describing: error))")
        }

        let events = listener.snapshot()
        let issued = events.compactMap { event -> (String, Int64)? in
            if case let .tokenIssued(identity, expiresAt) = event { return (identity, expiresAt) }
            return nil
        }
        XCTAssertEqual(issued.count, 1, "\(events)")
        XCTAssertTrue(issued.first?.0.hasPrefix("client") ?? false, "\(events)")
        XCTAssertGreaterThan(issued.first?.1 ?? 0, 0)
        let failed = events.compactMap { event -> (String, String)? in
            if case let .loginFailed(identity, reason) = event { return (identity, reason) }
            return nil
        }
        XCTAssertEqual(failed.count, 1, "\(events)")
        XCTAssertTrue(failed.first?.0.hasPrefix("user:bob") ?? false, "\(events)")
        XCTAssertFalse(failed.first?.1.contains("not-bobs-password") ?? true, "events never carry secrets")
    }

    func testAListenerThatThrowsDoesNotBreakTokenRequests() async throws {
        let listener = ThrowingListener()
        let client = try AuthClient(config: config(), listener: listener)

        let session = try await client.login(username: "alice", password: "alice-password")
        session.invalidate()
        let token = try await session.accessToken()
        XCTAssertFalse(token.value.isEmpty)
        _ = try await client.clientCredentialsSession().accessToken()

        XCTAssertGreaterThanOrEqual(listener.calls, 2, "the listener was called \(listener.calls) times")
    }

    func testLogoutRevokesAtTheServerAndForgetsTheSession() async throws {
        let store = DictionaryStore()
        let client = try AuthClient(config: config(), store: store)
        let session = try await client.login(username: "alice", password: "alice-password")

        try await session.logout()

        let stats = try await server.stats()
        XCTAssertGreaterThanOrEqual(stats.revocations, 1, "\(stats)")
        XCTAssertTrue(store.snapshot().isEmpty)
        XCTAssertNil(client.session(account: "alice"))
    }

    // MARK: - Helpers

    /// The error `body` throws, or nil (XCTAssertThrowsError takes no async closure).
    private func thrownError<T>(_ body: () async throws -> T) async -> Error? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }
}

/// A TokenStore an app would back with the Keychain; here a dictionary. The core
/// calls it from its own threads, hence the lock.
final class DictionaryStore: TokenStore, @unchecked Sendable {
    private let lock = NSLock()
    private var tokens: [String: String] = [:]

    func load(key: String) throws -> String? {
        lock.lock(); defer { lock.unlock() }
        return tokens[key]
    }

    func save(key: String, refreshToken: String) throws {
        lock.lock(); defer { lock.unlock() }
        tokens[key] = refreshToken
    }

    func remove(key: String) throws {
        lock.lock(); defer { lock.unlock() }
        tokens[key] = nil
    }

    func snapshot() -> [String: String] {
        lock.lock(); defer { lock.unlock() }
        return tokens
    }
}

/// A store whose Keychain is locked: the typed `StoreError` on load, and an
/// arbitrary Swift error (which UniFFI reports as an unexpected callback error) on
/// save and remove.
final class FailingStore: TokenStore, @unchecked Sendable {
    struct DiskFull: Error {}

    func load(key: String) throws -> String? { throw StoreError.Failed(reason: "keychain locked") }
    func save(key: String, refreshToken: String) throws { throw DiskFull() }
    func remove(key: String) throws { throw DiskFull() }
}

/// Records every event, for assertions.
final class RecordingListener: AuthEventListener, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [AuthEvent] = []

    func onEvent(event: AuthEvent) throws {
        lock.lock(); defer { lock.unlock() }
        events.append(event)
    }

    func snapshot() -> [AuthEvent] {
        lock.lock(); defer { lock.unlock() }
        return events
    }
}

/// A listener that always fails: half the time with the typed `ListenerError`, half
/// the time with an arbitrary Swift error.
final class ThrowingListener: AuthEventListener, @unchecked Sendable {
    struct ListenerBug: Error {}

    private let lock = NSLock()
    private var count = 0

    var calls: Int {
        lock.lock(); defer { lock.unlock() }
        return count
    }

    func onEvent(event: AuthEvent) throws {
        lock.lock()
        count += 1
        let n = count
        lock.unlock()
        if n % 2 == 0 {
            throw ListenerError.Failed(reason: "metrics backend down")
        }
        throw ListenerBug()
    }
}
