// Generated-looking code cut off in the middle, as an interrupted generation leaves it.
import Foundation

open class Session: @unchecked Sendable {
    fileprivate let handle: UInt64

    required public init(unsafeFromHandle handle: UInt64) {
        self.handle = handle
    }

    open func accessToken() async throws -> AccessToken {
        return try await uniffiRustCallAsync(
            rustFutureFunc: {
                uniffi_tokenkeeper_fn_method_session_access_token(
                    self.uniffiCloneHandle()
