// URLSession as tokenkeeper's HTTP stack: the app's session (its configuration, proxy,
// App Transport Security, a pinning delegate) carries every request the Rust core sends.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Sends the SDK's token, revocation, discovery and device requests with `URLSession`.
///
/// Pass the app's own `session` so its configuration applies. Redirects are refused
/// per task by a delegate (a redirect could carry the client secret or a refresh token
/// to another host; the core refuses one anyway); when the app's session has a delegate
/// of its own, its session-level `willPerformHTTPRedirection` must refuse them too,
/// since the task delegate takes precedence only where the session's delegate does not
/// implement the method.
///
/// Request bodies hold secrets: the body is wiped once the task is over, but
/// `URLSession` copies it into its own buffers while the task runs. See docs/ios.md.
///
/// ```swift
/// let client = try AuthClient(config: config, transport: URLSessionTransport(session: appSession))
/// ```
public final class URLSessionTransport: HttpTransport, @unchecked Sendable {
    private let session: URLSession
    private let refuser = RedirectRefuser()

    /// A transport over `session` (by default a session of its own, ephemeral: no
    /// cookies or cache for token responses).
    public init(session: URLSession = URLSession(configuration: .ephemeral)) {
        self.session = session
    }

    public func send(request: HttpRequest) async throws -> HttpResponse {
        defer { Self.wipe(request.body) }
        guard let url = URL(string: request.url) else { throw HttpError.Other(reason: "not a URL") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        urlRequest.timeoutInterval = TimeInterval(request.timeoutMs) / 1000
        for header in request.headers {
            urlRequest.addValue(header.value, forHTTPHeaderField: header.name)
        }
        if request.method != "GET" { urlRequest.httpBody = request.body }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await session.data(for: urlRequest, delegate: refuser)
        } catch let error as URLError {
            throw Self.classify(error)
        }
        guard let http = response as? HTTPURLResponse else { throw HttpError.Other(reason: "not an HTTP response") }
        let status = UInt16(clamping: http.statusCode)
        if UInt64(data.count) > request.maxResponseBytes { throw HttpError.TooLarge(status: status) }
        let headers = http.allHeaderFields.compactMap { name, value -> HttpResponseHeader? in
            guard let name = name as? String, let value = value as? String else { return nil }
            return HttpResponseHeader(name: name, value: value)
        }
        // A URL other than the request's means a redirect was followed: the core refuses it.
        return HttpResponse(status: status, headers: headers, body: data, finalUrl: http.url?.absoluteString)
    }

    /// Zeroes the body's bytes in place once the task is over. `Data` is copy-on-write,
    /// so `resetBytes` on a copy would wipe only that copy: the bytes are written through
    /// the storage every holder shares (UniFFI's lifted value, the finished `URLRequest`).
    static func wipe(_ data: Data) {
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0 else { return }
            let bytes = UnsafeMutableRawPointer(mutating: base)
            #if canImport(Darwin)
            _ = memset_s(bytes, raw.count, 0, raw.count)
            #else
            memset(bytes, 0, raw.count)
            #endif
        }
    }

    /// The error's code names the failure; its description could hold the URL.
    static func classify(_ error: URLError) -> HttpError {
        switch error.code {
        case .timedOut:
            return .Timeout
        case .cannotFindHost, .cannotConnectToHost, .dnsLookupFailed, .notConnectedToInternet,
             .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot, .clientCertificateRejected,
             .appTransportSecurityRequiresSecureConnection:
            return .Connect(reason: "URLError \(error.code.rawValue)")
        case .networkConnectionLost, .cannotParseResponse, .badServerResponse:
            return .Interrupted(reason: "URLError \(error.code.rawValue)")
        default:
            return .Other(reason: "URLError \(error.code.rawValue)")
        }
    }
}

/// Hands every redirect back unfollowed: the 3xx reaches the core, which refuses it.
final class RedirectRefuser: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
