public struct AccessToken {
    public var value: String
