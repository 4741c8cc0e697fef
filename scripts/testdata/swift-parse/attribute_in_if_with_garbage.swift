extension Converter {
#if swift(>=5.8)
    @_documentation(visibility: private) + 1
#endif
    public static func lift(_ value: Int) -> Int {
        return value
    }
}
