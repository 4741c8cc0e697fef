// Hand-written Swift sugar over the generated bindings (TokenKeeper.swift). No token
// logic lives here: caching, single-flight and recovery are the Rust core's. This is
// the Swift twin of the Kotlin TokenKeeperInterceptor and applies the same replay rule.

import Foundation

@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
extension URLSession {
    /// Loads `request` with `session`'s access token (`Authorization: Bearer …`) and
    /// recovers from a revoked or expired token.
    ///
    /// ```swift
    /// let session = try await client.login(username: "alice", password: password)
    /// let (data, response) = try await URLSession.shared.data(for: request, authorizedBy: session)
    /// ```
    ///
    /// On `401 Unauthorized` it hands the failed token and the response's
    /// `WWW-Authenticate` header to `session.handleUnauthorized(failedToken:wwwAuthenticate:)`
    /// (one renewal per revocation, shared by every request that failed with the same
    /// token), then sends the request **once** more with the new token when replaying
    /// it is safe (see `URLRequest.isReplayableAfterTokenRenewal`: an idempotent method,
    /// RFC 9110 §9.2.2, or an `Idempotency-Key` header). Otherwise, for example for a
    /// `POST`, the token is still renewed, for the next request, and the 401 response is
    /// **returned**, not thrown: the app decides whether sending it again is safe. A
    /// second 401 after the replay is returned as well. This is the rule the Rust
    /// core's `Session::send` and the Kotlin interceptor apply.
    ///
    /// - Parameters:
    ///   - request: the request; an `Authorization` header in it is replaced.
    ///   - session: whose token to send.
    ///   - delegate: passed to `data(for:delegate:)` for each attempt.
    /// - Returns: the response of the last attempt, whatever its status code.
    /// - Throws: `AuthError` when no token can be had (for example
    ///   `.ReauthenticationRequired`: show the login screen), or the `URLError` of the
    ///   transfer.
    public func data(
        for request: URLRequest,
        authorizedBy session: any SessionProtocol,
        delegate: (any URLSessionTaskDelegate)? = nil
    ) async throws -> (Data, URLResponse) {
        let token = try await session.accessToken()
        let (data, response) = try await self.data(for: request.authorized(with: token), delegate: delegate)
        guard let http = response as? HTTPURLResponse, http.statusCode == 401 else {
            return (data, response)
        }

        // The core's decision after a 401: a token to retry with, or nil when the 401
        // is not about the token (then it goes back to the caller unchanged).
        let challenges = http.value(forHTTPHeaderField: "WWW-Authenticate").map { [$0] } ?? []
        guard let renewed = try await session.handleUnauthorized(failedToken: token, wwwAuthenticate: challenges) else {
            return (data, response)
        }
        guard request.isReplayableAfterTokenRenewal else {
            return (data, response)
        }
        return try await self.data(for: request.authorized(with: renewed), delegate: delegate)
    }
}

extension URLRequest {
    /// Methods that RFC 9110 §9.2.2 defines as idempotent: sending the request twice
    /// has the same effect as sending it once.

    /// Whether `URLSession.data(for:authorizedBy:)` sends this request again after a
    /// 401 and a token renewal: its method is idempotent (GET, HEAD, OPTIONS, TRACE,
    /// PUT, DELETE) or it carries an `Idempotency-Key` header, and its body is not a
    /// stream (`httpBodyStream` is consumed by the first attempt and cannot be re-read).
    public var isReplayableAfterTokenRenewal: Bool {
        if httpBodyStream != nil {
            return false
        }
        return isReplaySafe(
            method: httpMethod ?? "GET",
            hasIdempotencyKey: value(forHTTPHeaderField: "Idempotency-Key") != nil
        )
    }

    /// A copy carrying `token` as the bearer credential (RFC 6750 §2.1).
    func authorized(with token: AccessToken) -> URLRequest {
        var copy = self
        copy.setValue("Bearer " + token.value, forHTTPHeaderField: "Authorization")
        return copy
    }
}
