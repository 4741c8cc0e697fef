extension Converter {
#if swift(>=5.8)
    @_documentation(visibility: private)
#endif
}
