// OpenID Connect through the hand-written Swift API against the development server:
// the validated ID token's claims after a PKCE sign-in and after a restart (from the
// store, no request), UserInfo, the end-session URL and its redirect, the sign-in
// options on the URL, and a refused ID token as the typed error. Twins of the Kotlin
// JVM tests (bindings/kotlin/src/test/kotlin/dev/tokenkeeper/OidcTest.kt); they use the
// browser of SignInTests.
//
// NOT executed on tokenkeeper's Linux development machines or CI (no Swift toolchain
// there): only their syntax is checked, by scripts/check-swift.sh.

import Foundation
import XCTest
@testable import TokenKeeper

extension SignInTests {

    private func oidcConfig(withKeySet: Bool = true) -> AuthConfig {
        let base = server.baseURL.absoluteString
        return AuthConfig(
            tokenEndpoint: server.tokenEndpoint,
            clientId: "oidc-app",
            revocationEndpoint: server.revocationEndpoint,
            scopes: ["openid", "profile", "email"],
            authorizationEndpoint: base + "/oauth2/authorize",
            issuer: base,
            oidc: OidcEndpoints(
                jwksUri: withKeySet ? base + "/oauth2/jwks" : nil,
                userinfoEndpoint: base + "/api/userinfo",
                endSessionEndpoint: base + "/oauth2/logout"
            )
        )
    }

    private func oidcSignIn(_ client: AuthClient) async throws -> Session {
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        XCTAssertNotNil(pending.nonce(), "openid implies a nonce")
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        return try await client.completeAuthorization(pending: pending, redirectUrl: redirect)
    }

    func testAPkceSignInHasTheValidatedIdTokensClaims() async throws {
        let session = try await oidcSignIn(try AuthClient(config: oidcConfig()))
        let claims = try XCTUnwrap(session.idTokenClaims())
        XCTAssertEqual(claims.subject, "alice")
        XCTAssertEqual(claims.issuer, server.baseURL.absoluteString)
        XCTAssertEqual(claims.email, "alice@example.test")
        XCTAssertEqual(claims.emailVerified, true)
        XCTAssertEqual(claims.displayName, "Alice Example")
        XCTAssertTrue(claims.json.contains("\"nonce\""), claims.json)
        XCTAssertNotNil(claims.authTime)
    }

    func testAfterARestartTheClaimsComeFromTheStoreWithoutARequest() async throws {
        let store = DictionaryStore()
        let first = try await oidcSignIn(try AuthClient(config: oidcConfig(), store: store))
        let claims = try XCTUnwrap(first.idTokenClaims())
        XCTAssertTrue(store.snapshot().values.first?.contains("\"claims\"") ?? false, "the record holds the claims")

        try await server.resetStats()
        let restored = try await AuthClient(config: oidcConfig(), store: store).restore(username: "alice")
        XCTAssertEqual(restored.idTokenClaims(), claims)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "\(stats)")
        XCTAssertEqual(stats.resourceRequests, 0, "\(stats)")

        try await restored.logout()
        XCTAssertNil(restored.idTokenClaims(), "logout forgets them")
        XCTAssertTrue(store.snapshot().isEmpty)
    }

    func testUserinfoAnswersForTheSignedInUser() async throws {
        let session = try await oidcSignIn(try AuthClient(config: oidcConfig()))
        let info = try await session.userinfo()
        XCTAssertEqual(info.subject, "alice")
        XCTAssertEqual(info.email, "alice@example.test")
        let stats = try await server.stats()
        XCTAssertEqual(stats.resourceRequests, 1, "\(stats)")
    }

    func testTheEndSessionUrlCarriesTheIdTokenAndItsRedirectIsChecked() async throws {
        let session = try await oidcSignIn(try AuthClient(config: oidcConfig()))
        let end = try session.endSessionRequest(postLogoutRedirectUri: Self.redirectURI)
        let items = URLComponents(string: end.url())?.queryItems ?? []
        let query = Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(query["id_token_hint"]?.split(separator: ".").count, 3)
        XCTAssertEqual(query["post_logout_redirect_uri"], Self.redirectURI)
        XCTAssertEqual(query["state"], end.state())
        try await session.logout()

        // The browser (`ASWebAuthenticationSession` in an app): the provider ends its
        // session and sends it back with our state.
        let endURL = try XCTUnwrap(URL(string: end.url()))
        let (_, answer) = try await browser.data(from: endURL)
        let http = try XCTUnwrap(answer as? HTTPURLResponse)
        XCTAssertEqual(http.statusCode, 303)
        try end.complete(redirect: try XCTUnwrap(http.value(forHTTPHeaderField: "Location")))
        XCTAssertThrowsError(try end.complete(redirect: Self.redirectURI + "?state=someone-elses")) { error in
            guard case AuthError.stateMismatch = error else { return XCTFail("\(error)") }
        }
    }

    func testSignInOptionsGoOnTheAuthorizationUrl() throws {
        let options = SignInOptions(maxAge: 60, prompt: "login", loginHint: "alice", acrValues: "urn:mfa")
        let pending = try AuthClient(config: oidcConfig())
            .authorizationRequest(account: "alice", redirectUri: Self.redirectURI, options: options)
        let items = URLComponents(string: pending.url())?.queryItems ?? []
        let query = Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        XCTAssertEqual(query["max_age"], "60")
        XCTAssertEqual(query["prompt"], "login")
        XCTAssertEqual(query["login_hint"], "alice")
        XCTAssertEqual(query["acr_values"], "urn:mfa")
    }

    func testAStepUpChallengeIsTheTypedErrorAndItsValuesSignInAgainMoreStrongly() async throws {
        let client = try AuthClient(config: oidcConfig())
        let session = try await oidcSignIn(client)
        let token = try await session.accessToken()
        let challenge = #"Bearer error="insufficient_user_authentication", acr_values="urn:mfa", max_age="300""#
        let error = await thrownError { try await session.handleUnauthorized(failedToken: token, wwwAuthenticate: [challenge]) }
        guard case let .stepUpRequired(message)? = error as? AuthError else {
            return XCTFail("expected AuthError.stepUpRequired, got \(String(describing: error))")
        }
        XCTAssertTrue(message.contains("urn:mfa"), message)
        let stepUp = try XCTUnwrap(stepUpChallenge(wwwAuthenticate: [challenge]))
        XCTAssertEqual(stepUp.acrValues, "urn:mfa")
        XCTAssertEqual(stepUp.maxAge, 300)
        let stronger = try client.authorizationRequest(
            account: "alice", redirectUri: Self.redirectURI, options: stepUp.signInOptions)
        XCTAssertTrue(stronger.url().contains("acr_values=urn"), stronger.url())
        XCTAssertNil(stepUpChallenge(wwwAuthenticate: [#"Bearer error="invalid_token""#]))
    }

    func testAnIdTokenWithoutAKeySetIsTheTypedErrorAndSignsNobodyIn() async throws {
        let store = DictionaryStore()
        let client = try AuthClient(config: oidcConfig(withKeySet: false), store: store)
        let error = await thrownError { try await self.oidcSignIn(client) }
        guard case let .invalidJwt(message)? = error as? AuthError else {
            return XCTFail("expected AuthError.invalidJwt, got \(String(describing: error))")
        }
        XCTAssertTrue(message.contains("key set"), message)
        XCTAssertNil(client.session(username: "alice"))
        XCTAssertTrue(store.snapshot().isEmpty, "nothing stored")
    }
}
