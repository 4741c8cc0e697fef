// The `tokenkeeper-devserver` binary (crate `devserver/`) as a child process: an
// in-memory OAuth2 authorization server plus a bearer-protected `/api/…`, with an
// admin API to read statistics, revoke tokens and inject faults. The Swift twin of
// the Kotlin tests' DevServer.kt.
//
// macOS only (Foundation `Process`; iOS has no subprocesses). Shipped, not executed
// on tokenkeeper's Linux development machines: see docs/ios.md.

import Foundation
import XCTest

final class DevServer: @unchecked Sendable {
    let baseURL: URL
    private let process: Process

    var tokenEndpoint: String { baseURL.appendingPathComponent("oauth2/token").absoluteString }
    var revocationEndpoint: String { baseURL.appendingPathComponent("oauth2/revoke").absoluteString }
    func resourceURL(_ path: String) -> URL { baseURL.appendingPathComponent("api/" + path) }

    private init(process: Process, baseURL: URL) {
        self.process = process
        self.baseURL = baseURL
    }

    /// The binary: `$TOKENKEEPER_DEVSERVER`, else `../../target/debug/tokenkeeper-devserver`
    /// relative to the package (found from this file's path, so the working directory
    /// of `swift test` or Xcode does not matter).
    static var binaryURL: URL {
        if let path = ProcessInfo.processInfo.environment["TOKENKEEPER_DEVSERVER"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent() // TokenKeeperTests
            .deletingLastPathComponent() // Tests
            .deletingLastPathComponent() // bindings/TokenKeeper
        return packageRoot.appendingPathComponent("../../target/debug/tokenkeeper-devserver").standardizedFileURL
    }

    /// Starts the server on a free port and waits for its
    /// `listening on http://127.0.0.1:PORT` line (at most `timeout` seconds).
    static func start(_ flags: [String] = [], timeout: TimeInterval = 20) throws -> DevServer {
        let binary = binaryURL
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw DevServerError("\(binary.path) is missing: build it with `cargo build -p tokenkeeper-devserver`"
                + " or set TOKENKEEPER_DEVSERVER")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--port", "0"] + flags
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        try process.run()

        // `availableData` blocks, so the first line is read on another thread and
        // waited for with a deadline: a server that never says where it listens is killed.
        let reader = stdout.fileHandleForReading
        let firstLine = FirstLine()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var buffer = Data()
            while !buffer.contains(UInt8(ascii: "\n")) {
                let chunk = reader.availableData
                if chunk.isEmpty { break } // EOF: the server exited
                buffer.append(chunk)
            }
            let line = buffer.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).first
            firstLine.set(line.map { String(decoding: $0, as: UTF8.self) })
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else {
            process.terminate()
            throw DevServerError("tokenkeeper-devserver printed nothing within \(timeout) s")
        }
        let prefix = "listening on "
        guard let line = firstLine.get(), line.hasPrefix(prefix),
              let url = URL(string: line.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces))
        else {
            process.terminate()
            throw DevServerError("tokenkeeper-devserver did not start; its first line was: \(firstLine.get() ?? "<none>")")
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        reader.readabilityHandler = { handle in _ = handle.availableData }
        return DevServer(process: process, baseURL: url)
    }

    func stop() {
        process.terminate() // SIGTERM: the server shuts down gracefully
        process.waitUntilExit()
    }

    // MARK: - Admin API

    /// What the server saw since it started or since the last `resetStats()`.
    func stats() async throws -> Stats {
        let (data, _) = try await admin("GET", "/_admin/stats")
        return try Stats(json: data)
    }

    func resetStats() async throws { try await admin("POST", "/_admin/reset-stats") }

    /// Revokes every token (access and refresh) of `subject`: a user name or a client id.
    func revokeSubject(_ subject: String) async throws {
        try await admin("POST", "/_admin/revoke-subject?subject=\(subject)")
    }

    /// Changes `username`'s password: the password a session holds in memory stops working.
    func setPassword(_ username: String, _ password: String) async throws {
        try await admin("POST", "/_admin/set-password?username=\(username)&password=\(password)")
    }

    func clearFaults() async throws { try await admin("POST", "/_admin/clear-faults") }

    /// A new DPoP nonce (the server needs `--dpop-nonces`): proofs with the old one are refused.
    func rotateDpopNonce() async throws { try await admin("POST", "/_admin/rotate-dpop-nonce") }

    @discardableResult
    private func admin(_ method: String, _ pathAndQuery: String) async throws -> (Data, HTTPURLResponse) {
        guard let url = URL(string: baseURL.absoluteString + pathAndQuery) else {
            throw DevServerError("bad admin path \(pathAndQuery)")
        }
        var request = URLRequest(url: url, timeoutInterval: 10)
        request.httpMethod = method
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse, (200..<300).contains(http.statusCode) else {
            throw DevServerError("\(method) \(pathAndQuery): \(response) \(String(decoding: data, as: UTF8.self))")
        }
        return (data, http)
    }

    /// The `GET /_admin/stats` JSON.
    struct Stats: CustomStringConvertible {
        let tokenRequests: Int
        let tokenRequestsByGrant: [String: Int]
        let resourceRequests: Int
        let revocations: Int
        let dpopProofsAccepted: Int
        let dpopRejections: [String: Int]
        let description: String

        init(json: Data) throws {
            guard let object = try JSONSerialization.jsonObject(with: json) as? [String: Any],
                  let tokenRequests = object["token_requests"] as? Int,
                  let resourceRequests = object["resource_requests"] as? Int
            else {
                throw DevServerError("unexpected stats: \(String(decoding: json, as: UTF8.self))")
            }
            self.tokenRequests = tokenRequests
            self.resourceRequests = resourceRequests
            self.tokenRequestsByGrant = object["token_requests_by_grant"] as? [String: Int] ?? [:]
            self.revocations = (object["revocations"] as? [Any])?.count ?? 0
            self.dpopProofsAccepted = object["dpop_proofs_accepted"] as? Int ?? 0
            self.dpopRejections = object["dpop_rejections"] as? [String: Int] ?? [:]
            self.description = String(decoding: json, as: UTF8.self)
        }

        /// Token requests with `grant_type` = `grant` (client_credentials, password, refresh_token).
        func tokenRequests(grant: String) -> Int { tokenRequestsByGrant[grant] ?? 0 }
    }
}

struct DevServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The first stdout line, handed from the reader thread to the test thread.
private final class FirstLine: @unchecked Sendable {
    private let lock = NSLock()
    private var line: String?
    func set(_ value: String?) { lock.lock(); line = value; lock.unlock() }
    func get() -> String? { lock.lock(); defer { lock.unlock() }; return line }
}
