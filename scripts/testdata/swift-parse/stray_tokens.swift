import Foundation

public struct AccessToken {
    public var value: String
}
)) => garbage <<<
public func f() -> Int { 1 }
