// Hand-written Swift sugar over the generated bindings. No token logic lives here:
// caching, single-flight and recovery are the Rust core's. The Swift twin of the
// Kotlin TokenKeeperInterceptor, with the same host and replay rules.

import Foundation

/// Which requests get `session`'s token: only those to the hosts or origins named
/// here. Requests to any other host are sent untouched.
///
/// Each entry is a host name (`api.example.com`: https on any port) or an origin
/// (`https://api.example.com:8443`, `http://localhost:8080` for a simulator: exactly that
/// scheme, host and port). Matching ignores case; no wildcards, no subdomains.
///
/// ```swift
/// let api = try TokenKeeperAuthorization(session: session, allowedHosts: ["api.example.com"])
/// let (data, response) = try await URLSession.shared.data(for: request, authorizedBy: api)
/// ```
public struct TokenKeeperAuthorization: Sendable {
    /// Whose token to send.
    public let session: Session
    private let hosts: Set<String>
    private let origins: Set<String>

    /// - Throws: `AuthError.invalidConfig` for an empty list or an origin that is not a URL.
    public init(session: Session, allowedHosts: [String]) throws {
        guard !allowedHosts.isEmpty else {
            throw AuthError.invalidConfig(message: "name at least one host that may receive the token")
        }
        var hosts = Set<String>()
        var origins = Set<String>()
        for entry in allowedHosts.map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if entry.contains("://") {
                guard let url = URL(string: entry), let origin = Self.origin(of: url) else {
                    throw AuthError.invalidConfig(message: "not an origin: \(entry)")
                }
                origins.insert(origin)
            } else {
                hosts.insert(entry.lowercased())
            }
        }
        self.session = session
        self.hosts = hosts
        self.origins = origins
    }

    /// Whether `url` may receive the token.
    public func isAllowed(_ url: URL) -> Bool {
        if url.scheme?.lowercased() == "https", let host = url.host?.lowercased(), hosts.contains(host) {
            return true
        }
        return Self.origin(of: url).map(origins.contains) ?? false
    }

    /// `scheme://host:port`, lower case, with the scheme's default port made explicit.
    static func origin(of url: URL) -> String? {
        guard let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return nil }
        let defaultPort: Int? = scheme == "https" ? 443 : (scheme == "http" ? 80 : nil)
        guard let port = url.port ?? defaultPort else { return nil }
        return "\(scheme)://\(host):\(port)"
    }
}

@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
extension URLSession {
    /// Loads `request`, with `authorization.session`'s access token when its host is
    /// allowed, and recovers from a revoked or expired token.
    ///
    /// On `401 Unauthorized` it hands the failed token and the `WWW-Authenticate` header
    /// to `Session.handleUnauthorized` (one renewal per revocation, shared by every
    /// request that failed with the same token), then sends the request **once** more
    /// with the new token when replaying it is safe (`isReplayableAfterTokenRenewal`).
    /// Otherwise the token is still renewed, for the next request, and the 401 response is
    /// **returned**, not thrown. A request to a host that is not allowed is sent as it is.
    /// With DPoP (`AuthConfig.dpop`, RFC 9449) every request gets a fresh proof from the
    /// core (`Authorization: DPoP …` and `DPoP: <proof>`), and a 401 whose challenge says
    /// `use_dpop_nonce` hands the response's `DPoP-Nonce` to the session and is sent once
    /// more with a new proof, under the same replay rule.
    /// With per-response token rotation (`AuthConfig.tokenRotation`) the session adopts
    /// the rotated token an authorized response carries before this returns.
    ///
    /// - Throws: `AuthError` when no token can be had (for example
    ///   `.reauthenticationRequired`: show the login screen), or the transfer's `URLError`.
    public func data(
        for request: URLRequest,
        authorizedBy authorization: TokenKeeperAuthorization,
        delegate: (any URLSessionTaskDelegate)? = nil
    ) async throws -> (Data, URLResponse) {
        guard let url = request.url, authorization.isAllowed(url) else {
            return try await self.data(for: request, delegate: delegate)
        }
        let session = authorization.session
        if session.dpop {
            return try await dataWithProofs(for: request, url: url, session: session, delegate: delegate)
        }
        let token = try await session.accessToken()
        let (data, response) = try await self.data(for: request.authorized(with: token), delegate: delegate)
        guard let http = response as? HTTPURLResponse, http.statusCode == 401 else {
            session.adoptRotatedToken(from: response)
            return (data, response)
        }

        // The core's decision after a 401: a token to retry with, or nil when the 401
        // is not about the token (then it goes back to the caller unchanged).
        let challenges = http.value(forHTTPHeaderField: "WWW-Authenticate").map { [$0] } ?? []
        guard let renewed = try await session.handleUnauthorized(failedToken: token.value, wwwAuthenticate: challenges) else {
            return (data, response)
        }
        guard request.isReplayableAfterTokenRenewal else {
            return (data, response)
        }
        let replayed = try await self.data(for: request.authorized(with: renewed), delegate: delegate)
        session.adoptRotatedToken(from: replayed.1)
        return replayed
    }
}

@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
extension URLSession {
    // DPoP: the core builds each proof (and says Bearer for a server that ignored proofs
    // in IfSupported mode); a nonce 401 comes back from handleUnauthorized with the same
    // token, so the one retry serves nonces and revocations alike.
    private func dataWithProofs(
        for request: URLRequest,
        url: URL,
        session: Session,
        delegate: (any URLSessionTaskDelegate)?
    ) async throws -> (Data, URLResponse) {
        let method = request.httpMethod ?? "GET"
        let headers = try await session.authorizationHeaders(method: method, url: url.absoluteString)
        let (data, response) = try await self.data(for: request.authorized(with: headers), delegate: delegate)
        guard let http = response as? HTTPURLResponse, http.statusCode == 401 else {
            session.adoptRotatedToken(from: response)
            return (data, response)
        }
        if let nonce = http.value(forHTTPHeaderField: "DPoP-Nonce") {
            session.dpopNonceReceived(url: url.absoluteString, nonce: nonce)
        }
        let challenges = http.value(forHTTPHeaderField: "WWW-Authenticate").map { [$0] } ?? []
        guard try await session.handleUnauthorized(failedToken: headers.token, wwwAuthenticate: challenges) != nil,
              request.isReplayableAfterTokenRenewal else {
            return (data, response)
        }
        let again = try await session.authorizationHeaders(method: method, url: url.absoluteString)
        let replayed = try await self.data(for: request.authorized(with: again), delegate: delegate)
        session.adoptRotatedToken(from: replayed.1)
        return replayed
    }
}

extension Session {
    /// Per-response rotation: the session adopts the token `response` carries before the
    /// caller sees the response, so the next request (and the mirror) uses it.
    func adoptRotatedToken(from response: URLResponse) {
        guard let rotation, let http = response as? HTTPURLResponse,
              let rotated = http.value(forHTTPHeaderField: rotation.tokenHeader) else { return }
        var headers = [rotation.tokenHeader: rotated]
        headers[rotation.expiryHeader] = http.value(forHTTPHeaderField: rotation.expiryHeader)
        headers["Date"] = http.value(forHTTPHeaderField: "Date")
        observeResponseHeaders(headers)
    }
}

extension URLRequest {
    /// Whether `URLSession.data(for:authorizedBy:)` sends this request again after a
    /// 401 and a token renewal: its method is idempotent (RFC 9110 §9.2.2: GET, HEAD,
    /// OPTIONS, TRACE, PUT, DELETE) or it carries an `Idempotency-Key` header, and its body
    /// is not a stream (`httpBodyStream` is one-shot: consumed by the first attempt).
    public var isReplayableAfterTokenRenewal: Bool {
        if httpBodyStream != nil {
            return false
        }
        return isReplaySafe(
            method: httpMethod ?? "GET",
            hasIdempotencyKey: value(forHTTPHeaderField: "Idempotency-Key") != nil
        )
    }

    /// A copy carrying the core's `Authorization` value and, for a DPoP token, its proof.
    func authorized(with headers: AuthorizationHeaders) -> URLRequest {
        var copy = self
        copy.setValue(headers.authorization, forHTTPHeaderField: "Authorization")
        copy.setValue(headers.dpop, forHTTPHeaderField: "DPoP")
        return copy
    }

    /// A copy carrying `token` as the bearer credential (RFC 6750 §2.1).
    func authorized(with token: AccessToken) -> URLRequest {
        var copy = self
        copy.setValue("Bearer " + token.value, forHTTPHeaderField: "Authorization")
        return copy
    }
}
