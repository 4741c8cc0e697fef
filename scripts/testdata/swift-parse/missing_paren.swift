func register(store: TokenStore) {
    call(store, 2
}
