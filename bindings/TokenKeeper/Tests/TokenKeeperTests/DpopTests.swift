// DPoP (RFC 9449) from Swift against the development server's verifier, started with
// `--dpop-required --dpop-nonces`: the twin of the Kotlin DpopTest
// (bindings/kotlin/src/test/kotlin/dev/tokenkeeper/DpopTest.kt). The key is the core's
// software key, kept in the session record (so in the app's TokenStore).
//
// Shipped for macOS and NOT executed on tokenkeeper's Linux development machines or
// CI (no Swift toolchain there): only their syntax is checked, by
// scripts/check-swift.sh. See docs/ios.md.

import Foundation
import XCTest
@testable import TokenKeeper

@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
final class DpopTests: XCTestCase {

    private static let sharedServer = Result { try DevServer.start(["--dpop-required", "--dpop-nonces"]) }

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
            dpop: .required
        )
    }

    private func status(_ path: String, _ session: Session) async throws -> Int {
        let api = try TokenKeeperAuthorization(session: session, allowedHosts: [server.baseURL.absoluteString])
        let (_, response) = try await URLSession.shared.data(for: URLRequest(url: server.resourceURL(path)), authorizedBy: api)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }

    func testSignInRefreshAndResourceCallsUseBoundTokens() async throws {
        let session = try await AuthClient(config: config()).login(username: "alice", password: "alice-password")
        let code = try await status("me", session)
        XCTAssertEqual(code, 200)
        let jkt = try session.native.dpopThumbprint()
        XCTAssertNotNil(jkt)
        let first = try await session.accessToken()
        let refreshed = try await session.refresh()
        XCTAssertNotEqual(first.value, refreshed.value)
        XCTAssertEqual(try session.native.dpopThumbprint(), jkt, "the same key after the refresh")
        let again = try await status("me", session)
        XCTAssertEqual(again, 200)
        let stats = try await server.stats()
        XCTAssertEqual(stats.dpopProofsAccepted, 4, "\(stats)")
        XCTAssertEqual(stats.dpopRejections["nonce"], 1, "\(stats)")

        var stolen = URLRequest(url: server.resourceURL("me"))
        stolen.setValue("Bearer " + refreshed.value, forHTTPHeaderField: "Authorization")
        let (_, response) = try await URLSession.shared.data(for: stolen)
        XCTAssertEqual((response as? HTTPURLResponse)?.statusCode, 401, "a bound token as Bearer")
    }

    func testANonceRotationCostsOneResendAndNoTokenRequest() async throws {
        let session = try await AuthClient(config: config()).login(username: "alice", password: "alice-password")
        let first = try await status("me", session)
        XCTAssertEqual(first, 200)
        try await server.resetStats()
        for round in 1...3 {
            try await server.rotateDpopNonce()
            let code = try await status("me", session)
            XCTAssertEqual(code, 200, "round \(round)")
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.resourceRequests, 6, "\(stats)")
        XCTAssertEqual(stats.tokenRequests, 0, "a nonce refusal is not a revocation: \(stats)")
    }

    func testAMissingKeyOnRestoreNeedsTheUserWithoutARequest() async throws {
        let store = DictionaryStore()
        _ = try await AuthClient(config: config(), store: store).login(username: "alice", password: "alice-password")
        guard let (key, record) = store.snapshot().first,
              var json = try JSONSerialization.jsonObject(with: Data(record.utf8)) as? [String: Any] else {
            return XCTFail("no stored record")
        }
        XCTAssertNotNil(json["dpop_key"], "the software key is in the record")
        json["dpop_key"] = nil
        let spoiled = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
        try store.save(key: key, refreshToken: spoiled)
        try await server.resetStats()

        do {
            _ = try await AuthClient(config: config(), store: store).restore(username: "alice")
            XCTFail("restored without its key")
        } catch AuthError.reauthenticationRequired(let message) {
            XCTAssertTrue(message.contains("missing"), message)
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "no request without the key")
    }
}
