// User sign-in through the hand-written Swift AuthClient against the development
// server: the PKCE browser flow (URLSession plays the browser, submitting the server's
// test login), the device grant and token import, each returning the wrapped Session
// (registered with the client, its token mirror and state stream running). Mirrors the
// Kotlin JVM tests (bindings/kotlin/src/test/kotlin/dev/tokenkeeper/SignInTest.kt).
//
// Run on macOS:
//   cargo build -p tokenkeeper-devserver
//   scripts/build-xcframework.sh --macos-only
//   swift test   # at the repository root
//
// NOT executed on tokenkeeper's Linux development machines or CI (no Swift
// toolchain there): only their syntax is checked, by scripts/check-swift.sh.

import Foundation
import XCTest
@testable import TokenKeeper

final class SignInTests: XCTestCase {

    private static let sharedServer = Result { try DevServer.start() }
    static let redirectURI = "dev.tokenkeeper.demo:/oauth2redirect"

    var server: DevServer!

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

    private func nativeConfig() -> AuthConfig {
        AuthConfig(
            tokenEndpoint: server.tokenEndpoint,
            clientId: "native-app",
            revocationEndpoint: server.revocationEndpoint,
            authorizationEndpoint: server.baseURL.absoluteString + "/oauth2/authorize",
            deviceAuthorizationEndpoint: server.baseURL.absoluteString + "/oauth2/device_authorization",
            issuer: server.baseURL.absoluteString,
            requireIss: true
        )
    }

    /// A session that reports redirects instead of following them.
    private final class NoRedirects: NSObject, URLSessionTaskDelegate {
        func urlSession(
            _ session: URLSession,
            task: URLSessionTask,
            willPerformHTTPRedirection response: HTTPURLResponse,
            newRequest request: URLRequest,
            completionHandler: @escaping (URLRequest?) -> Void
        ) {
            completionHandler(nil)
        }
    }

    let browser = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)

    private func formBody(_ items: [URLQueryItem]) -> Data {
        var components = URLComponents()
        components.queryItems = items
        let encoded = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        return Data(encoded.utf8)
    }

    private func post(_ url: URL, _ items: [URLQueryItem]) async throws -> (Data, HTTPURLResponse) {
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = "POST"
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        request.httpBody = formBody(items)
        let (data, response) = try await browser.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw DevServerError("not HTTP: \(response)") }
        return (data, http)
    }

    /// Opens the authorization URL, submits the test login, returns the redirect URL.
    func browserLogin(_ url: String, username: String, password: String) async throws -> String {
        guard let components = URLComponents(string: url), var action = URL(string: url) else {
            throw DevServerError("bad authorization URL \(url)")
        }
        let (_, page) = try await browser.data(from: action)
        XCTAssertEqual((page as? HTTPURLResponse)?.statusCode, 200)
        var items = components.queryItems ?? []
        items.append(URLQueryItem(name: "username", value: username))
        items.append(URLQueryItem(name: "password", value: password))
        var bare = URLComponents(url: action, resolvingAgainstBaseURL: false)
        bare?.query = nil
        action = bare?.url ?? action
        let (_, answer) = try await post(action, items)
        XCTAssertEqual(answer.statusCode, 303)
        guard let location = answer.value(forHTTPHeaderField: "Location") else {
            throw DevServerError("no Location in \(answer)")
        }
        return location
    }

    func thrownError<T>(_ body: () async throws -> T) async -> Error? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Authorization code with PKCE

    func testPkceRoundTripSignsTheUserIn() async throws {
        let client = try AuthClient(config: nativeConfig())
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI, scopes: ["read"])
        XCTAssertTrue(pending.url().contains("code_challenge_method=S256"), pending.url())

        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        let session = try await client.completeAuthorization(pending: pending, redirectUrl: redirect)

        XCTAssertEqual(session.account(), "alice")
        // Its own identity: `session(account: "alice")` looks up the config's scopes, not these.
        XCTAssertEqual(session.identity(), "user:alice scope=\"read\"")
        XCTAssertNil(client.session(account: "alice"))
        let token = try await session.accessToken()
        XCTAssertEqual(token.scopes, ["read"])
        XCTAssertEqual(session.cachedAccessToken(), token, "served from the mirror")
        XCTAssertEqual(session.native.cachedAccessToken(), token, "the mirror and the core agree")
        guard case .signedIn = session.state else {
            return XCTFail("expected .signedIn, got \(session.state)")
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "authorization_code"), 1, "\(stats)")
    }

    /// The app was terminated while the sheet was open: a new client on the same store
    /// completes the saved sign-in, once.
    func testASavedSignInIsCompletedByANewClientOnceOnly() async throws {
        let store = DictionaryStore()
        let first = try AuthClient(config: nativeConfig(), store: store)
        let pending = try first.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        let saved = try await first.saveAuthorization(pending: pending)
        XCTAssertFalse(saved.contains("alice"), "sealed")
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")

        let second = try AuthClient(config: nativeConfig(), store: store)
        let session = try await second.completeSavedAuthorization(saved: saved, redirectUrl: redirect)
        XCTAssertEqual(session.account(), "alice")
        let replay = await thrownError { try await second.completeSavedAuthorization(saved: saved, redirectUrl: redirect) }
        guard case .savedSignInRefused = replay as? AuthError else {
            return XCTFail("expected .savedSignInRefused, got \(String(describing: replay))")
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "authorization_code"), 1, "the replay never reached the server")
    }

    func testDiscoveryConfiguresTheClientFromTheMetadata() async throws {
        let client = try await AuthClient.discover(issuer: server.baseURL.absoluteString, clientId: "native-app")
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        XCTAssertTrue(pending.url().hasPrefix(server.baseURL.absoluteString + "/oauth2/authorize?"), pending.url())
        XCTAssertEqual(String(describing: SessionState.loggedOut), "LoggedOut")
    }

    func testAPkceSessionWhoseTokensAreAllRevokedNeedsTheUser() async throws {
        let client = try AuthClient(config: nativeConfig())
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        let session = try await client.completeAuthorization(pending: pending, redirectUrl: redirect)
        XCTAssertTrue(client.session(account: "alice") === session, "registered like a login session")
        // Made now, so it is registered before anything happens (AsyncStream's build closure runs at once).
        let identities = client.reauthenticationRequired()
        let needsUser = Task { () -> String? in
            for await identity in identities { return identity }
            return nil
        }
        let token = try await session.accessToken()
        try await server.revokeSubject("alice")
        try await server.resetStats()

        // No credentials to fall back on: one refresh attempt, rejected, then the user.
        let error = await thrownError {
            try await session.handleUnauthorized(failedToken: token, wwwAuthenticate: ["Bearer error=\"invalid_token\""])
        }

        guard case .reauthenticationRequired? = error as? AuthError else {
            return XCTFail("expected AuthError.reauthenticationRequired, got \(String(describing: error))")
        }
        XCTAssertEqual(session.state, .reauthenticationRequired)
        XCTAssertNil(session.cachedAccessToken())
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests(grant: "refresh_token"), 1, "\(stats)")
        XCTAssertEqual(stats.tokenRequests(grant: "password"), 0, "\(stats)")
        let identity = await needsUser.value
        XCTAssertTrue(identity?.hasPrefix("user:alice") ?? false, "\(String(describing: identity))")
    }

    func testARedirectWithAForeignStateIsRejected() async throws {
        let client = try AuthClient(config: nativeConfig())
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        let forged = redirect.replacingOccurrences(
            of: "state=[^&]*", with: "state=forged", options: .regularExpression)

        let error = await thrownError { try await client.completeAuthorization(pending: pending, redirectUrl: forged) }

        guard case .stateMismatch? = error as? AuthError else {
            return XCTFail("expected AuthError.stateMismatch, got \(String(describing: error))")
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "\(stats)")
    }

    func testAReplayedCodeIsInvalidGrant() async throws {
        let client = try AuthClient(config: nativeConfig())
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        _ = try await client.completeAuthorization(pending: pending, redirectUrl: redirect)

        let error = await thrownError { try await client.completeAuthorization(pending: pending, redirectUrl: redirect) }

        guard case .invalidGrant? = error as? AuthError else {
            return XCTFail("expected AuthError.invalidGrant, got \(String(describing: error))")
        }
    }

    // MARK: - Device grant

    func testDeviceGrantSucceedsOnceTheUserApproves() async throws {
        let client = try AuthClient(config: nativeConfig())
        let device = try await client.startDeviceAuthorization(account: "living-room-tv")
        guard let verification = URL(string: device.verificationUri()) else {
            return XCTFail("bad verification URI \(device.verificationUri())")
        }
        XCTAssertEqual(device.interval(), 5, "a TimeInterval in seconds")
        XCTAssertEqual(device.expiresAtEpochSeconds(), Int64(device.expiresAt().timeIntervalSince1970))
        XCTAssertGreaterThan(device.expiresAt(), Date())
        let (_, page) = try await post(verification, [
            URLQueryItem(name: "user_code", value: device.userCode()),
            URLQueryItem(name: "username", value: "bob"),
            URLQueryItem(name: "password", value: "bob-password"),
        ])
        XCTAssertEqual(page.statusCode, 200)

        // One real wait of the server's interval (5 s), then the tokens.
        let session = try await client.completeDeviceAuthorization(device: device)

        XCTAssertEqual(session.account(), "living-room-tv")
        XCTAssertTrue(client.session(account: "living-room-tv") === session)
        let token = try await session.accessToken()
        XCTAssertFalse(token.value.isEmpty)
        XCTAssertEqual(session.cachedAccessToken(), token, "served from the mirror")
    }

    func testDevicePollingCanBeCancelled() async throws {
        let client = try AuthClient(config: nativeConfig())
        let device = try await client.startDeviceAuthorization(account: "living-room-tv")
        let polling = Task { await self.thrownError { try await client.completeDeviceAuthorization(device: device) } }
        try await Task.sleep(nanoseconds: 200_000_000)
        device.cancel()

        let error = await polling.value

        guard case .cancelled? = error as? AuthError else {
            return XCTFail("expected AuthError.cancelled, got \(String(describing: error))")
        }
    }

    // MARK: - Import

    func testImportedTokensAreServedWithoutATokenRequest() async throws {
        let client = try AuthClient(config: nativeConfig())
        let tokens = ImportedTokens(
            accessToken: "imported-access-token",
            refreshToken: nil,
            expiresAt: Date().addingTimeInterval(600),
            scope: "read"
        )
        XCTAssertFalse(String(describing: tokens).contains("imported-access-token"), "description must redact")

        let session = try await client.importTokens(account: "carol", tokens: tokens)

        XCTAssertTrue(client.session(account: "carol") === session)
        XCTAssertEqual(session.cachedAccessToken()?.value, "imported-access-token", "the mirror holds it at once")
        let token = try await session.accessToken()
        XCTAssertEqual(token.value, "imported-access-token")
        XCTAssertEqual(token.expiresAt.timeIntervalSince1970, tokens.expiresAt!.timeIntervalSince1970, accuracy: 1)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "\(stats)")
    }
}
