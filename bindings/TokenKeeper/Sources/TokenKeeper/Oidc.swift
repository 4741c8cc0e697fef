// Hand-written Swift API for OpenID Connect over the generated native handles
// (TokenKeeper.swift). Every check (ID token signature, iss, aud, nonce, sub …) runs
// in Rust; these are the Swift spellings, throwing `AuthError` like every other call.

import Foundation

extension Session {
    /// Who signed in: the claims of the session's last validated ID token (`subject`,
    /// `name`, `email`, …, every claim in `json`). No request, also right after
    /// `AuthClient.restore`: the claims are kept in the stored session. `nil` without
    /// `openid` in scope.
    public func idTokenClaims() -> Claims? { native.idTokenClaims() }

    /// The UserInfo claims (OIDC Core §5.3), fetched with the session's token.
    /// - Throws: `AuthError.invalidJwt` when their `sub` is not the ID token's.
    public func userinfo() async throws -> Claims {
        try await mappingErrors { try await native.userinfo() }
    }

    /// Logout at the provider (RP-Initiated Logout 1.0): build this before `logout()`
    /// (which forgets the ID token), open `url()` in an `ASWebAuthenticationSession`,
    /// and hand its callback URL to `complete(redirect:)`. No network traffic.
    /// - Throws: `AuthError.invalidConfig` without `OidcEndpoints.endSessionEndpoint`.
    public func endSessionRequest(postLogoutRedirectUri: String? = nil) throws -> EndSessionRequest {
        try mappingErrorsSync { try native.endSessionRequest(postLogoutRedirectUri: postLogoutRedirectUri) }
    }
}

extension EndSessionRequest {
    /// Checks the redirect the provider sent the browser back to.
    /// - Throws: `AuthError.stateMismatch` for another request's redirect,
    ///   `.invalidRedirect` for a bad URL.
    public func complete(redirect: String) throws {
        try mappingErrorsSync { try complete(redirectUrl: redirect) }
    }
}

extension Claims {
    /// What an account screen shows as the user's name: `name`, else
    /// `preferredUsername`, else `email`, else `subject`.
    public var displayName: String { name ?? preferredUsername ?? email ?? subject }
}

extension StepUpChallenge {
    /// The stronger sign-in this challenge asks for, for `authorizationRequest(…, options:)`.
    public var signInOptions: SignInOptions { SignInOptions(maxAge: maxAge, acrValues: acrValues) }
}
