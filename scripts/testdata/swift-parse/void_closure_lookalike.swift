func register() {
    let writeReturn = { () ) }
    call(writeReturn)
}
