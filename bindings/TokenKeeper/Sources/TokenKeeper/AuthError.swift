// Hand-written: the error every TokenKeeper call throws, with lowerCamel cases like
// every other Swift enum. UniFFI's Swift template capitalises error cases, so the
// generated enum is renamed NativeAuthError (uniffi.toml) and converted here.

import Foundation

/// Why a token could not be had, named for what the app should do. Each case carries
/// a message without secrets that includes a troubleshooting hint.
///
/// ```swift
/// do {
///     _ = try await session.accessToken()
/// } catch AuthError.reauthenticationRequired {
///     showLogin()
/// }
/// ```
public enum AuthError: Error, Equatable, Hashable, Sendable, LocalizedError {
    /// The server rejected the client id or secret: fix the configuration.
    case invalidClient(message: String)
    /// Wrong password, or an expired or revoked refresh token: ask the user to sign in.
    case invalidGrant(message: String)
    /// A requested scope is unknown or not allowed for this client.
    case invalidScope(message: String)
    /// This client may not use this grant type.
    case unauthorizedClient(message: String)
    /// The server does not support this grant type.
    case unsupportedGrantType(message: String)
    /// The server rejected the request as malformed.
    case invalidRequest(message: String)
    /// Another OAuth error code from the server.
    case oauth(message: String)
    /// The token is valid but lacks the permission (HTTP 403); a new token would not help.
    case insufficientScope(message: String)
    /// No silent way is left to get a token: show the login screen.
    case reauthenticationRequired(message: String)
    /// Network failure, timeout, HTTP 5xx or 429: try again later.
    case temporarilyUnavailable(message: String)
    /// With `RecoveryPolicy.clearAndFail`: the token was revoked and dropped; try again.
    case tokenRevoked(message: String)
    /// The token was renewed but the request was not re-sent, as replaying it is unsafe.
    case requestNotReplayed(message: String)
    /// The server's answer was not a valid token response.
    case invalidResponse(message: String)
    /// The configuration is unusable (bad URL, http to a host not allowed, …).
    case invalidConfig(message: String)
    /// The app's token store failed.
    case storage(message: String)
    /// The user (or the server's policy) refused the sign-in: offer to start again.
    case accessDenied(message: String)
    /// The redirect does not belong to this sign-in (`state` differs): start again.
    case stateMismatch(message: String)
    /// The server named another issuer than expected (RFC 9207 / RFC 8414): nothing was exchanged.
    case issuerMismatch(message: String)
    /// The redirect URL is not an authorization response.
    case invalidRedirect(message: String)
    /// The device code expired before the user approved: start a new device sign-in.
    case deviceCodeExpired(message: String)
    /// The app cancelled the sign-in (`DeviceAuthorization.cancel()`).
    case cancelled(message: String)
    /// A saved sign-in expired, was completed already, is unreadable or its key is gone:
    /// nothing was sent; start the sign-in again.
    case savedSignInRefused(message: String)
    /// An ID token (or UserInfo answer) failed the check the message names, or arrived
    /// with no key set to verify it: nothing was signed in.
    case invalidJwt(message: String)
    /// The resource server asks for a stronger sign-in (RFC 9470; the message names its
    /// `acr_values` and `max_age`): sign in again with `SignInOptions`.
    case stepUpRequired(message: String)
    /// A bug in tokenkeeper, or an error this binding does not know yet.
    case internal(message: String)

    /// The message, for logs and support (never a secret).
    public var message: String {
        switch self {
        case .invalidClient(let message),
             .invalidGrant(let message),
             .invalidScope(let message),
             .unauthorizedClient(let message),
             .unsupportedGrantType(let message),
             .invalidRequest(let message),
             .oauth(let message),
             .insufficientScope(let message),
             .reauthenticationRequired(let message),
             .temporarilyUnavailable(let message),
             .tokenRevoked(let message),
             .requestNotReplayed(let message),
             .invalidResponse(let message),
             .invalidConfig(let message),
             .storage(let message),
             .accessDenied(let message),
             .stateMismatch(let message),
             .issuerMismatch(let message),
             .invalidRedirect(let message),
             .deviceCodeExpired(let message),
             .cancelled(let message),
             .savedSignInRefused(let message),
             .invalidJwt(let message),
             .stepUpRequired(let message),
             .internal(let message):
            return message
        }
    }

    public var errorDescription: String? { message }

    /// Whether trying again later is the right answer.
    public var isRetryable: Bool {
        switch self {
        case .temporarilyUnavailable, .tokenRevoked, .requestNotReplayed: return true
        default: return false
        }
    }

    init(_ native: NativeAuthError) {
        switch native {
        case let .InvalidClient(message): self = .invalidClient(message: message)
        case let .InvalidGrant(message): self = .invalidGrant(message: message)
        case let .InvalidScope(message): self = .invalidScope(message: message)
        case let .UnauthorizedClient(message): self = .unauthorizedClient(message: message)
        case let .UnsupportedGrantType(message): self = .unsupportedGrantType(message: message)
        case let .InvalidRequest(message): self = .invalidRequest(message: message)
        case let .OAuth(message): self = .oauth(message: message)
        case let .InsufficientScope(message): self = .insufficientScope(message: message)
        case let .ReauthenticationRequired(message): self = .reauthenticationRequired(message: message)
        case let .TemporarilyUnavailable(message): self = .temporarilyUnavailable(message: message)
        case let .TokenRevoked(message): self = .tokenRevoked(message: message)
        case let .RequestNotReplayed(message): self = .requestNotReplayed(message: message)
        case let .InvalidResponse(message): self = .invalidResponse(message: message)
        case let .InvalidConfig(message): self = .invalidConfig(message: message)
        case let .Storage(message): self = .storage(message: message)
        case let .AccessDenied(message): self = .accessDenied(message: message)
        case let .StateMismatch(message): self = .stateMismatch(message: message)
        case let .IssuerMismatch(message): self = .issuerMismatch(message: message)
        case let .InvalidRedirect(message): self = .invalidRedirect(message: message)
        case let .DeviceCodeExpired(message): self = .deviceCodeExpired(message: message)
        case let .Cancelled(message): self = .cancelled(message: message)
        case let .SavedSignInRefused(message): self = .savedSignInRefused(message: message)
        case let .InvalidJwt(message): self = .invalidJwt(message: message)
        case let .StepUpRequired(message): self = .stepUpRequired(message: message)
        case let .Internal(message): self = .internal(message: message)
        }
    }
}

/// Runs `body`, converting the generated error into `AuthError`.
func mappingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as NativeAuthError {
        throw AuthError(error)
    }
}

/// The synchronous twin of `mappingErrors`.
func mappingErrorsSync<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as NativeAuthError {
        throw AuthError(error)
    }
}
