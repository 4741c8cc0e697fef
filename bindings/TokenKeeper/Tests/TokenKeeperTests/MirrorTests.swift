// The Swift token mirror, the state stream and the URLSession helper's host and body
// rules, against tokenkeeper-devserver. The twin of the Kotlin MirrorTest. Shipped for
// macOS, NOT executed on tokenkeeper's Linux machines (see docs/ios.md).

import Foundation
import XCTest
@testable import TokenKeeper

final class MirrorTests: XCTestCase {
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

    private func config() -> AuthConfig {
        AuthConfig(
            tokenEndpoint: server.tokenEndpoint,
            clientId: "demo-client",
            clientSecret: "demo-secret",
            revocationEndpoint: server.revocationEndpoint,
            scopes: ["read"]
        )
    }

    private func api(_ session: Session) throws -> TokenKeeperAuthorization {
        try TokenKeeperAuthorization(session: session, allowedHosts: [server.baseURL.absoluteString])
    }

    /// Whether the resource server accepts `token` now (a request without tokenkeeper).
    private func serverAccepts(_ token: AccessToken) async throws -> Bool {
        var request = URLRequest(url: server.resourceURL("orders"))
        request.setValue("Bearer " + token.value, forHTTPHeaderField: "Authorization")
        let (_, response) = try await URLSession.shared.data(for: request)
        return (response as? HTTPURLResponse)?.statusCode == 200
    }

    func testTheCachedReadComesFromTheMirrorAndMatchesTheCore() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let token = try await session.accessToken()

        XCTAssertEqual(session.cachedAccessToken(), token)
        XCTAssertEqual(session.native.cachedAccessToken(), token, "the mirror and the core agree")
        XCTAssertEqual(token.expiresAtEpochSeconds, Int64(token.expiresAt.timeIntervalSince1970))
    }

    func testAfterInvalidateTheCachedReadIsEmptyThenShowsTheNewToken() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let old = try await session.accessToken()

        session.invalidate()
        XCTAssertNil(session.cachedAccessToken(), "no stale token after invalidate()")

        let new = try await session.accessToken()
        XCTAssertNotEqual(old.value, new.value)
        XCTAssertEqual(session.cachedAccessToken(), new)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 2, "\(stats)")
    }

    func testAfterLogoutTheCachedReadIsEmptyAndTheStateIsLoggedOut() async throws {
        let client = try AuthClient(config: config())
        let session = try await client.login(username: "alice", password: "alice-password")
        _ = try await session.accessToken()

        try await session.logout()

        XCTAssertNil(session.cachedAccessToken())
        XCTAssertEqual(session.state, .loggedOut)
        XCTAssertNil(client.session(account: "alice"))
    }

    func testARevocationRecoveredThroughURLSessionShowsTheNewTokenAtOnce() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let old = try await session.accessToken()
        try await server.revokeSubject("demo-client")

        let (_, response) = try await URLSession.shared.data(
            for: URLRequest(url: server.resourceURL("orders")), authorizedBy: try api(session))
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 200)

        let mirrored = try XCTUnwrap(session.cachedAccessToken())
        XCTAssertNotEqual(mirrored.value, old.value, "the mirror holds the recovered token")
        let accepted = try await serverAccepts(mirrored)
        XCTAssertTrue(accepted)
    }

    /// Moves `clock` to one minute before `token` expires: inside the refresh margin, still valid.
    private func intoRefreshMargin(_ clock: ManualClock, _ token: AccessToken) {
        let millis = Int64(token.expiresAt.timeIntervalSince1970 * 1000) - clock.nowEpochMillis() - 60_000
        clock.advance(by: TimeInterval(millis) / 1000)
    }

    func testAfterABackgroundRefreshTheCachedReadShowsTheNewTokenAtOnce() async throws {
        let clock = ManualClock.startingNow()
        let session = try AuthClient(config: config(), clock: clock).clientCredentialsSession()
        let first = try await session.accessToken()

        intoRefreshMargin(clock, first)
        XCTAssertNil(session.cachedAccessToken(), "due for refresh: neither the mirror nor the core serves it as fresh")
        let served = try await session.accessToken()
        XCTAssertEqual(served.value, first.value, "the still-valid token is served; the refresh runs behind the caller")
        await session.waitForRefresh()

        let mirrored = try XCTUnwrap(session.cachedAccessToken(), "the refreshed token is fresh in the mirror")
        XCTAssertNotEqual(mirrored.value, first.value)
        XCTAssertEqual(session.native.cachedAccessToken(), mirrored, "the mirror and the core agree")
        XCTAssertGreaterThan(mirrored.expiresAt, first.expiresAt)
        XCTAssertEqual(session.state, .signedIn(expiresAtEpochSeconds: mirrored.expiresAtEpochSeconds, expiresAt: mirrored.expiresAt))
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 2, "\(stats)")
        let accepted = try await serverAccepts(mirrored)
        XCTAssertTrue(accepted)
    }

    func testHundredTasksInsideTheRefreshMarginShareOneBackgroundRefresh() async throws {
        let clock = ManualClock.startingNow()
        let session = try AuthClient(config: config(), clock: clock).clientCredentialsSession()
        let first = try await session.accessToken()
        intoRefreshMargin(clock, first)
        try await server.resetStats()

        let expiries = try await withThrowingTaskGroup(of: Date.self) { group in
            for _ in 0..<100 {
                group.addTask { try await session.accessToken().expiresAt }
            }
            return try await group.reduce(into: [Date]()) { $0.append($1) }
        }
        await session.waitForRefresh()

        XCTAssertTrue(expiries.allSatisfy { $0 >= first.expiresAt }, "nobody got an older token")
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "one background refresh for 100 callers: \(stats)")
        let fresh = try XCTUnwrap(session.cachedAccessToken())
        XCTAssertNotEqual(fresh.value, first.value)
    }

    func testAfterAPerResponseRotationTheCachedReadShowsTheRotatedTokenAtOnce() async throws {
        let rotating = try DevServer.start(["--rotate-access-tokens"])
        defer { rotating.stop() }
        let config = AuthConfig(
            tokenEndpoint: rotating.tokenEndpoint,
            clientId: "demo-client",
            clientSecret: "demo-secret",
            scopes: ["read"],
            tokenRotation: TokenRotation(tokenHeader: "access-token", expiryHeader: "expiry")
        )
        let session = try AuthClient(config: config).clientCredentialsSession()
        let authorization = try TokenKeeperAuthorization(session: session, allowedHosts: [rotating.baseURL.absoluteString])
        var previous = try await session.accessToken().value

        for round in 0..<3 {
            let (_, response) = try await URLSession.shared.data(
                for: URLRequest(url: rotating.resourceURL("orders")), authorizedBy: authorization)
            let http = try XCTUnwrap(response as? HTTPURLResponse)
            XCTAssertEqual(http.statusCode, 200)
            let rotated = try XCTUnwrap(http.value(forHTTPHeaderField: "access-token"), "round \(round): the server rotated")
            // Had the session kept its old token, the server would have answered with the
            // chain's newest token again: the one the previous round adopted.
            XCTAssertTrue(rotated != previous, "round \(round): the request carried the previous rotated token")
            XCTAssertTrue(session.cachedAccessToken()?.value == rotated, "round \(round): the mirror shows it at once")
            XCTAssertEqual(session.native.cachedAccessToken(), session.cachedAccessToken())
            previous = rotated
        }
        let stats = try await rotating.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "rotation needs no token endpoint traffic: \(stats)")
        XCTAssertEqual(stats.resourceRequests, 3, "no 401, no replay: \(stats)")
    }

    func testRefreshAndMinValidityUpdateTheMirrorAtOnce() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let first = try await session.accessToken()

        let refreshed = try await session.refresh()
        XCTAssertNotEqual(first.value, refreshed.value)
        XCTAssertEqual(session.cachedAccessToken(), refreshed)

        // The devserver's tokens live 1 h: asking for 2 h forces a new one.
        let longer = try await session.accessToken(minValidity: 7200)
        XCTAssertNotEqual(refreshed.value, longer.value)
        XCTAssertEqual(session.cachedAccessToken(), longer)
    }

    func testHundredConcurrentTasksAgreeOnOneToken() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        _ = try await session.accessToken()
        session.invalidate()
        try await server.resetStats()

        let values = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<100 {
                group.addTask { try await session.accessToken().value }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }

        XCTAssertEqual(values.count, 1, "one token for everyone")
        XCTAssertEqual(session.cachedAccessToken()?.value, values.first)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "\(stats)")
    }

    func testTheSameIdentityGivesTheSameSessionObject() async throws {
        let client = try AuthClient(config: config())
        let alice = try await client.login(username: "alice", password: "alice-password")
        XCTAssertTrue(client.session(account: "alice") === alice)
        XCTAssertTrue(client.clientCredentialsSession() === client.clientCredentialsSession())
    }

    func testTheStateStreamAndTheClientStreamFollowLostCredentials() async throws {
        let client = try AuthClient(config: config())
        let session = try await client.login(username: "bob", password: "bob-password")
        let token = try await session.accessToken()
        var states = session.stateUpdates().makeAsyncIterator()
        var needsUser = client.reauthenticationRequired().makeAsyncIterator()
        let initial = await states.next()
        XCTAssertEqual(initial, .signedIn(expiresAtEpochSeconds: token.expiresAtEpochSeconds, expiresAt: token.expiresAt))

        session.invalidate()
        let invalidated = await states.next()
        XCTAssertEqual(invalidated, .signedIn(expiresAtEpochSeconds: nil, expiresAt: nil))

        // Bob's password changed elsewhere and his tokens were revoked.
        try await server.setPassword("bob", "a-new-password")
        try await server.revokeSubject("bob")
        do {
            _ = try await URLSession.shared.data(for: URLRequest(url: server.resourceURL("me")), authorizedBy: try api(session))
            XCTFail("expected AuthError.reauthenticationRequired")
        } catch AuthError.reauthenticationRequired {
        }
        var last = await states.next()
        while let state = last, state != .reauthenticationRequired {
            last = await states.next()
        }
        XCTAssertEqual(last, .reauthenticationRequired)
        XCTAssertEqual(session.state, .reauthenticationRequired)
        XCTAssertNil(session.cachedAccessToken())
        let identity = await needsUser.next()
        XCTAssertTrue(identity?.hasPrefix("user:bob") ?? false, String(describing: identity))
        try await server.setPassword("bob", "bob-password")
    }

    func testTheTokenNeverGoesToAHostThatWasNotNamed() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let authorization = try api(session)

        // The same server under another name is another origin: no token, so a 401.
        let other = URL(string: server.resourceURL("orders").absoluteString.replacingOccurrences(of: "127.0.0.1", with: "localhost"))!
        let (_, response) = try await URLSession.shared.data(for: URLRequest(url: other), authorizedBy: authorization)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 401)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "not even a token was fetched: \(stats)")
    }

    func testHostEntriesMatchHttpsOnlyAndOriginsMatchExactly() throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let authorization = try TokenKeeperAuthorization(session: session, allowedHosts: ["API.example.com", "http://localhost:8080"])

        XCTAssertTrue(authorization.isAllowed(URL(string: "https://api.example.com/x")!))
        XCTAssertFalse(authorization.isAllowed(URL(string: "http://api.example.com/x")!))
        XCTAssertFalse(authorization.isAllowed(URL(string: "https://evil.api.example.com/x")!))
        XCTAssertFalse(authorization.isAllowed(URL(string: "https://api.example.com.evil.test/x")!))
        XCTAssertTrue(authorization.isAllowed(URL(string: "http://localhost:8080/x")!))
        XCTAssertFalse(authorization.isAllowed(URL(string: "http://localhost:8081/x")!))
        XCTAssertThrowsError(try TokenKeeperAuthorization(session: session, allowedHosts: []))
    }

    func testAStreamBodyIsNeverReplayed() async throws {
        let session = try AuthClient(config: config()).clientCredentialsSession()
        let old = try await session.accessToken()
        try await server.revokeSubject("demo-client")
        try await server.resetStats()

        var put = URLRequest(url: server.resourceURL("orders"))
        put.httpMethod = "PUT"
        put.httpBodyStream = InputStream(data: Data("{}".utf8))
        let (_, response) = try await URLSession.shared.data(for: put, authorizedBy: try api(session))

        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 401)
        let stats = try await server.stats()
        XCTAssertEqual(stats.resourceRequests, 1, "not replayed: \(stats)")
        XCTAssertNotEqual(session.cachedAccessToken()?.value, old.value, "but the token was renewed")
    }
}
