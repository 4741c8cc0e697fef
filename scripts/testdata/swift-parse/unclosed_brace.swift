import Foundation

public func greeting(name: String) -> String {
    if name.isEmpty {
        return "hello"
    
    return "hello, \(name)"
}
