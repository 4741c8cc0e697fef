// The replay rule of `URLSession.data(for:authorizedBy:)`, without a server: which
// requests may be sent again after a 401 and a token renewal. Shipped for macOS, not
// executed on tokenkeeper's Linux machines (see docs/ios.md).

import Foundation
import XCTest
@testable import TokenKeeper

final class URLRequestReplayTests: XCTestCase {
    private func request(_ method: String?) -> URLRequest {
        var request = URLRequest(url: URL(string: "https://api.example.com/orders")!)
        if let method {
            request.httpMethod = method
        }
        return request
    }

    func testIdempotentMethodsAreReplayed() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "get", "Delete"] {
            XCTAssertTrue(request(method).isReplayableAfterTokenRenewal, method)
        }
        XCTAssertTrue(request(nil).isReplayableAfterTokenRenewal, "the default method is GET")
    }

    func testNonIdempotentMethodsAreNotReplayed() {
        for method in ["POST", "PATCH", "CONNECT"] {
            XCTAssertFalse(request(method).isReplayableAfterTokenRenewal, method)
        }
    }

    func testAnIdempotencyKeyMakesAPostReplayable() {
        var post = request("POST")
        post.setValue("8e03978e-40d5-43e8-bc93-6894a57f9324", forHTTPHeaderField: "Idempotency-Key")
        XCTAssertTrue(post.isReplayableAfterTokenRenewal)
    }

    func testAStreamedBodyIsNeverReplayed() {
        var put = request("PUT")
        put.httpBodyStream = InputStream(data: Data("{}".utf8))
        XCTAssertFalse(put.isReplayableAfterTokenRenewal, "the first attempt consumed the stream")
    }

    func testTheTokenGoesInTheAuthorizationHeader() {
        var original = request("GET")
        original.setValue("Bearer stale", forHTTPHeaderField: "Authorization")
        let token = AccessToken(value: "abc123", expiresAtEpochSeconds: 0, scopes: [])

        let authorized = original.authorized(with: token)

        XCTAssertEqual(authorized.value(forHTTPHeaderField: "Authorization"), "Bearer abc123")
        XCTAssertEqual(original.value(forHTTPHeaderField: "Authorization"), "Bearer stale", "a copy, not in place")
    }
}
