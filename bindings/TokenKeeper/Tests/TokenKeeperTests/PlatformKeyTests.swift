// DPoP with the key on the platform (issue 20), the twin of the Kotlin PlatformKeyTest
// (bindings/kotlin/src/test/kotlin/dev/tokenkeeper/PlatformKeyTest.kt): the client gets
// a PlatformDpopKeys (here MemoryDpopKeys, CryptoKit software keys in a dictionary, the
// stand-in for SecureEnclaveDpopKeys) in the config, the core creates every session key there and keeps
// only its alias and thumbprint in the record. The development server runs with
// `--dpop-required --dpop-nonces` and verifies every proof.
//
// Shipped for macOS and NOT executed on tokenkeeper's Linux development machines or
// CI (no Swift toolchain there): only their syntax is checked, by
// scripts/check-swift.sh. See docs/ios.md.

import CryptoKit
import Foundation
import XCTest
@testable import TokenKeeper

@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
final class PlatformKeyTests: XCTestCase {

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

    private func client(_ store: TokenStore, _ keys: PlatformDpopKeys) throws -> AuthClient {
        try AuthClient(
            config: AuthConfig(
                tokenEndpoint: server.tokenEndpoint,
                clientId: "demo-client",
                clientSecret: "demo-secret",
                revocationEndpoint: server.revocationEndpoint,
                dpop: .required,
                dpopKeys: keys
            ),
            store: store)
    }

    private func status(_ path: String, _ session: Session) async throws -> Int {
        let api = try TokenKeeperAuthorization(session: session, allowedHosts: [server.baseURL.absoluteString])
        let (_, response) = try await URLSession.shared.data(for: URLRequest(url: server.resourceURL(path)), authorizedBy: api)
        return (response as? HTTPURLResponse)?.statusCode ?? 0
    }

    /// Refusals for any reason but `allowed`.
    private func refusals(_ stats: DevServer.Stats, except allowed: Set<String> = []) -> Int {
        stats.dpopRejections.filter { !allowed.contains($0.key) }.values.reduce(0, +)
    }

    func testASignInCreatesOnePlatformKeyAndTheRecordKeepsOnlyItsAlias() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        let session = try await client(store, keys).login(username: "alice", password: "alice-password")
        let code = try await status("me", session)
        XCTAssertEqual(code, 200)

        XCTAssertEqual(keys.count("create"), 1, "\(keys.calls())")
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        XCTAssertNotNil(alias.range(of: #"^tokenkeeper\.dpop\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{22}$"#, options: .regularExpression), alias)
        XCTAssertEqual(try session.native.dpopThumbprint(), keys.thumbprint(alias: alias), "bound to the platform key")

        let stats = try await server.stats()
        XCTAssertEqual(refusals(stats, except: ["nonce"]), 0, "\(stats)")
        XCTAssertEqual(stats.dpopProofsAccepted, 2, "the login and the resource call: \(stats)")
        XCTAssertEqual(stats.dpopProofsAccepted + (stats.dpopRejections["nonce"] ?? 0), keys.count("sign"), "\(keys.calls())")

        guard let record = store.snapshot().values.first else { return XCTFail("no stored record") }
        XCTAssertTrue(record.contains(alias), "the record names the key")
        XCTAssertFalse(record.contains("\"dpop_key\""), "no software key in the record")
        XCTAssertNil(record.range(of: #""d"\s*:"#, options: .regularExpression), "no private JWK member")
        if let secret = keys.privateKeyBytes(alias: alias) {
            XCTAssertFalse(record.contains(secret.base64EncodedString()), "private key bytes in the record")
            XCTAssertFalse(record.contains(base64url(secret)), "private key bytes in the record")
        }
    }

    func testAKeyStoreThatSignsInRawFormInsteadOfDERWorksTheSame() async throws {
        let keys = MemoryDpopKeys(rawSignatures: true)
        let session = try await client(DictionaryStore(), keys).login(username: "alice", password: "alice-password")
        let first = try await status("me", session)
        XCTAssertEqual(first, 200)
        _ = try await session.refresh()
        let second = try await status("me", session)
        XCTAssertEqual(second, 200)
        let stats = try await server.stats()
        XCTAssertEqual(refusals(stats, except: ["nonce"]), 0, "\(stats)")
        XCTAssertEqual(stats.dpopProofsAccepted, 4, "login, two resource calls, refresh: \(stats)")
    }

    func testAfterARestartTheSessionIsRestoredWithTheSamePlatformKey() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        _ = try await client(store, keys).login(username: "alice", password: "alice-password")
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        try await server.resetStats()

        let restored = try await client(store, keys).restore(account: "alice")
        let code = try await status("me", restored)
        XCTAssertEqual(code, 200)
        XCTAssertEqual(keys.count("create"), 1, "no key created by the restore: \(keys.calls())")
        XCTAssertTrue(keys.calls().contains("publicKey \(alias)"), "the restore checked the key")
        XCTAssertEqual(try restored.native.dpopThumbprint(), keys.thumbprint(alias: alias))
    }

    func testAPlatformKeyLostBehindTheSDKsBackNeedsTheUserBeforeAnyRequest() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        _ = try await client(store, keys).login(username: "alice", password: "alice-password")
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        keys.loseKey(alias: alias)
        let signed = keys.count("sign")
        try await server.resetStats()

        do {
            _ = try await client(store, keys).restore(account: "alice")
            XCTFail("restored without its key")
        } catch AuthError.reauthenticationRequired(let message) {
            XCTAssertTrue(message.contains("gone"), message)
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "no request without the key: \(stats)")
        XCTAssertEqual(keys.count("sign"), signed)
        XCTAssertTrue(store.snapshot().isEmpty, "the unusable record is deleted")
    }

    func testAnotherKeyUnderTheRecordedAliasNeedsTheUserBeforeAnyRequest() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        _ = try await client(store, keys).login(username: "alice", password: "alice-password")
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        keys.replaceKey(alias: alias)
        let signed = keys.count("sign")
        try await server.resetStats()

        do {
            _ = try await client(store, keys).restore(account: "alice")
            XCTFail("restored with another key")
        } catch AuthError.reauthenticationRequired(let message) {
            XCTAssertTrue(message.contains("thumbprint mismatch"), message)
        }
        let stats = try await server.stats()
        XCTAssertEqual(stats.tokenRequests, 0, "no request with the wrong key: \(stats)")
        XCTAssertEqual(keys.count("sign"), signed, "nothing signed with the wrong key")
        XCTAssertTrue(store.snapshot().isEmpty, "the unusable record is deleted")
    }

    func testALoginTheServerRefusesDeletesTheKeyMadeForIt() async throws {
        let keys = MemoryDpopKeys()
        let refused = await thrownErrorOf { try await self.client(DictionaryStore(), keys).login(username: "alice", password: "wrong-password") }
        XCTAssertNotNil(refused)
        XCTAssertEqual(keys.count("create"), 1, "\(keys.calls())")
        XCTAssertTrue(keys.aliases().isEmpty, "no key outlives a sign-in that made no session: \(keys.calls())")
    }

    func testAClientCredentialsSessionsKeyDoesNotOutliveItsClient() async throws {
        let keys = MemoryDpopKeys()
        for _ in 1...2 {
            _ = try await client(DictionaryStore(), keys).clientCredentialsSession().accessToken()
        }
        XCTAssertEqual(keys.count("create"), 2, "\(keys.calls())")
        XCTAssertTrue(keys.aliases().isEmpty, "keys nothing can find again: \(keys.calls())")
    }

    func testALogoutRevokesWithAValidProofThenDeletesTheKey() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        let session = try await client(store, keys).login(username: "alice", password: "alice-password")
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        try await server.resetStats()

        try await session.logout()
        XCTAssertEqual(keys.calls().filter { $0.hasPrefix("delete ") }, ["delete \(alias)"])
        XCTAssertEqual(keys.calls().last, "delete \(alias)", "deleted after the last proof")
        XCTAssertTrue(keys.aliases().isEmpty)
        XCTAssertTrue(store.snapshot().isEmpty, "the record is removed")

        let stats = try await server.stats()
        XCTAssertGreaterThanOrEqual(stats.revocations, 1, "\(stats)")
        XCTAssertEqual(stats.dpopProofsAccepted, stats.revocations, "each revocation proven: \(stats)")
        XCTAssertEqual(refusals(stats), 0, "\(stats)")
    }
}

// The browser sign-in twin runs on SignInTests' server (its test login page; proofs are
// verified there when sent, not required) with SignInTests' browser.
@available(iOS 15.0, macOS 12.0, tvOS 15.0, watchOS 8.0, *)
extension SignInTests {
    func testABrowserSignInBindsItsCodeToThePlatformKeyAndAnAbandonedOneDeletesItsKey() async throws {
        let store = DictionaryStore()
        let keys = MemoryDpopKeys()
        let config = AuthConfig(
            tokenEndpoint: server.tokenEndpoint,
            clientId: "native-app",
            revocationEndpoint: server.revocationEndpoint,
            authorizationEndpoint: server.baseURL.absoluteString + "/oauth2/authorize",
            dpop: .required,
            dpopKeys: keys
        )
        let client = try AuthClient(config: config, store: store)
        let pending = try client.authorizationRequest(account: "alice", redirectUri: Self.redirectURI)
        guard let alias = keys.aliases().first else { return XCTFail("no key created") }
        let jkt = URLComponents(string: pending.url())?.queryItems?.first { $0.name == "dpop_jkt" }?.value
        XCTAssertEqual(jkt, keys.thumbprint(alias: alias), "the code is bound to the platform key (RFC 9449 §10)")
        let redirect = try await browserLogin(pending.url(), username: "alice", password: "alice-password")
        let session = try await client.completeAuthorization(pending: pending, redirectUrl: redirect)
        XCTAssertEqual(try session.native.dpopThumbprint(), keys.thumbprint(alias: alias))
        XCTAssertTrue(store.snapshot().values.contains { $0.contains(alias) }, "the record names the key")
        XCTAssertEqual(keys.count("create"), 1, "\(keys.calls())")
        XCTAssertEqual(keys.count("delete"), 0, "\(keys.calls())")

        // A sign-in the user walked away from: its key goes with it (the last reference
        // to the pending sign-in is released at the end of the `do` scope).
        do {
            _ = try client.authorizationRequest(account: "bob", redirectUri: Self.redirectURI)
        }
        XCTAssertEqual(keys.count("create"), 2, "\(keys.calls())")
        XCTAssertEqual(Set(keys.aliases()), [alias], "the abandoned sign-in's key is deleted: \(keys.calls())")
    }
}

/// The error `body` throws, or nil.
private func thrownErrorOf<T>(_ body: () async throws -> T) async -> Error? {
    do {
        _ = try await body()
        return nil
    } catch {
        return error
    }
}

private func base64url(_ data: Data) -> String {
    data.base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// A PlatformDpopKeys of CryptoKit software keys in a dictionary, the twin of the Kotlin
/// tests' JcaDpopKeys: every call recorded, and a key can be lost or replaced behind the
/// SDK's back (what a restore on another device or another app's item does).
/// `rawSignatures` signs in the raw 64-byte `r || s` form instead of DER; the core accepts both.
final class MemoryDpopKeys: PlatformDpopKeys, @unchecked Sendable {
    private let rawSignatures: Bool
    private let lock = NSLock()
    private var keys: [String: P256.Signing.PrivateKey] = [:]
    private var log: [String] = []

    init(rawSignatures: Bool = false) {
        self.rawSignatures = rawSignatures
    }

    func calls() -> [String] { locked { log } }
    func count(_ operation: String) -> Int { calls().filter { $0.hasPrefix(operation + " ") }.count }
    func aliases() -> [String] { locked { Array(keys.keys) } }
    func privateKeyBytes(alias: String) -> Data? { locked { keys[alias]?.rawRepresentation } }
    func loseKey(alias: String) { locked { keys[alias] = nil } }
    func replaceKey(alias: String) { locked { keys[alias] = P256.Signing.PrivateKey() } }

    /// The RFC 7638 thumbprint of the key under `alias`, computed here.
    func thumbprint(alias: String) -> String? {
        guard let point = locked({ keys[alias]?.publicKey.x963Representation }) else { return nil }
        let x = base64url(point.subdata(in: 1..<33))
        let y = base64url(point.subdata(in: 33..<65))
        let jwk = #"{"crv":"P-256","kty":"EC","x":""# + x + #"","y":""# + y + #""}"#
        return base64url(Data(SHA256.hash(data: Data(jwk.utf8))))
    }

    func create(alias: String) throws -> Data {
        let key = P256.Signing.PrivateKey()
        locked {
            log.append("create \(alias)")
            keys[alias] = key
        }
        return key.publicKey.x963Representation
    }

    func publicKey(alias: String) throws -> Data? {
        locked {
            log.append("publicKey \(alias)")
            return keys[alias]?.publicKey.x963Representation
        }
    }

    func sign(alias: String, message: Data) throws -> Data {
        let key: P256.Signing.PrivateKey? = locked {
            log.append("sign \(alias)")
            return keys[alias]
        }
        guard let key else { throw DpopKeyError.Failed(reason: "no DPoP key under \(alias)") }
        let signature = try key.signature(for: message)
        return rawSignatures ? signature.rawRepresentation : signature.derRepresentation
    }

    func delete(alias: String) throws {
        locked {
            log.append("delete \(alias)")
            keys[alias] = nil
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
