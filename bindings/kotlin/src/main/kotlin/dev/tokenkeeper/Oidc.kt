// Hand-written Kotlin API for OpenID Connect over the generated native handles
// (tokenkeeper.kt). Every check (ID token signature, iss, aud, nonce, sub …) runs in
// Rust; these are the Kotlin spellings of the session's OpenID Connect calls.
package dev.tokenkeeper

/**
 * Who signed in: the claims of the session's last validated ID token (`sub`, `name`,
 * `email`, …, every claim in [Claims.json]). No request, also right after
 * [AuthClient.restore]: the claims are kept in the stored session. `null` without
 * `openid` in scope.
 *
 * ```kotlin
 * session.idTokenClaims()?.let { showAccount(it.displayName, it.picture) }
 * ```
 */
fun Session.idTokenClaims(): Claims? = native.idTokenClaims()

/**
 * The UserInfo claims (OIDC Core §5.3), fetched with the session's token.
 *
 * @throws AuthException.InvalidJwt their `sub` is not the ID token's.
 */
suspend fun Session.userinfo(): Claims = native.userinfo()

/**
 * Logout at the provider (RP-Initiated Logout 1.0): build this before [Session.logout]
 * (which forgets the ID token), open [EndSessionRequest.url] in Custom Tabs, and hand
 * the redirect to [EndSessionRequest.complete]. No network traffic.
 *
 * @throws AuthException.InvalidConfig without an `OidcEndpoints.endSessionEndpoint`.
 */
fun Session.endSessionRequest(postLogoutRedirectUri: String? = null): EndSessionRequest =
    native.endSessionRequest(postLogoutRedirectUri)

/** What an account screen shows as the user's name: `name`, else `preferred_username`, else `email`, else `sub`. */
val Claims.displayName: String get() = name ?: preferredUsername ?: email ?: subject

/** The stronger sign-in this challenge asks for, as `authorizationRequest(…, options = challenge.signInOptions())`. */
fun StepUpChallenge.signInOptions(): SignInOptions = SignInOptions(maxAge = maxAge, acrValues = acrValues)
