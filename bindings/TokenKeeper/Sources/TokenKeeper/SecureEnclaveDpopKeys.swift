// Hand-written: DPoP keys (RFC 9449) in the Secure Enclave, the Swift side of the core's
// PlatformDpopKeys seam. Proofs, thumbprints and the session record stay in Rust; this
// file only creates, finds, uses and deletes keys.
//
// Written against CryptoKit's and Security's documentation and parse-checked only
// (scripts/check-swift.sh): it has not been compiled or run on a device, a simulator or
// a Mac (tokenkeeper's development machines have no Swift toolchain).

#if canImport(CryptoKit) && canImport(Security)
import CryptoKit
import Foundation
import Security

/// DPoP keys for a client, one P-256 key per session: in the Secure Enclave when the
/// device has one, else a software key; either way kept in the Keychain so a restarted
/// app finds it again.
///
/// ```swift
/// let client = try AuthClient(config: AuthConfig(..., dpop: .required, dpopKeys: SecureEnclaveDpopKeys()),
///                             store: KeychainStore(service: "com.example.app.tokenkeeper"))
/// ```
///
/// - **Secure Enclave**: the private key is generated in the enclave and never leaves it.
///   What the Keychain holds is its `dataRepresentation`, a blob encrypted by the enclave
///   that only this device's enclave can use.
/// - **Fallback** (the simulator, Macs without an enclave): a CryptoKit software key whose
///   `rawRepresentation` is the Keychain item. The session works the same; the key is as
///   safe as the Keychain.
/// - **Never synced, never migrated**: items are `kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly`
///   and not synchronizable, so iCloud Keychain does not copy them and an encrypted backup
///   restored onto another device does not bring them; there the core reports
///   `AuthError.reauthenticationRequired` ("the DPoP key ... is gone") before any request.
///   After the first unlock they are usable while the device is locked, so a background
///   refresh can sign.
/// - **Reinstall**: iOS may keep Keychain items of a deleted app; a new install then finds
///   the key under the alias its record names only if the record survived too (both live
///   in the Keychain with the `KeychainStore` of docs/ios.md).
///
/// On macOS the items go to the data-protection keychain (`kSecUseDataProtectionKeychain`),
/// where the accessibility attribute applies; that needs a signed app with a keychain
/// access group (any app with an application identifier has one).
///
/// Errors are thrown as `DpopKeyError.Failed(reason:)` naming the operation and the
/// `OSStatus` or error type, never key bytes. Methods are called on the core's threads.
@available(iOS 13.0, macOS 10.15, *)
public final class SecureEnclaveDpopKeys: PlatformDpopKeys {
    /// The Keychain service of the items unless another is given.
    public static let defaultService = "tokenkeeper.dpop"

    private let service: String
    private let accessGroup: String?

    /// Keys under `service` (each item's account is the alias the core chose), in
    /// `accessGroup` if given (an app and its extensions sharing sessions share keys too).
    public init(service: String = SecureEnclaveDpopKeys.defaultService, accessGroup: String? = nil) {
        self.service = service
        self.accessGroup = accessGroup
    }

    /// Which kind of key an item holds; stored as the item's `kSecAttrGeneric`.
    private enum Kind: String {
        case secureEnclave = "secure-enclave"
        case software = "software"
    }

    public func create(alias: String) throws -> Data {
        // Replace what is there: a key under this alias belongs to an abandoned sign-in.
        try delete(alias: alias)
        if SecureEnclave.isAvailable {
            let key = try failing("create a Secure Enclave key") {
                try SecureEnclave.P256.Signing.PrivateKey(accessControl: try enclaveAccessControl())
            }
            try add(alias: alias, kind: .secureEnclave, data: key.dataRepresentation)
            return key.publicKey.x963Representation
        }
        let key = P256.Signing.PrivateKey()
        try add(alias: alias, kind: .software, data: key.rawRepresentation)
        return key.publicKey.x963Representation
    }

    public func publicKey(alias: String) throws -> Data? {
        guard let stored = try load(alias: alias) else { return nil }
        switch stored.kind {
        case .secureEnclave:
            return try enclaveKey(stored.data).publicKey.x963Representation
        case .software:
            return try softwareKey(stored.data).publicKey.x963Representation
        }
    }

    public func sign(alias: String, message: Data) throws -> Data {
        guard let stored = try load(alias: alias) else {
            throw DpopKeyError.Failed(reason: "no DPoP key in the Keychain under \(alias)")
        }
        // DER (ASN.1 SEQUENCE of r and s); the core converts it to the JWS r || s.
        switch stored.kind {
        case .secureEnclave:
            let key = try enclaveKey(stored.data)
            return try failing("sign with the Secure Enclave key") { try key.signature(for: message).derRepresentation }
        case .software:
            let key = try softwareKey(stored.data)
            return try failing("sign with the DPoP key") { try key.signature(for: message).derRepresentation }
        }
    }

    public func delete(alias: String) throws {
        let status = SecItemDelete(query(alias: alias) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw DpopKeyError.Failed(reason: "Keychain: could not delete the DPoP key (OSStatus \(status))")
        }
    }

    // MARK: - Keys

    // The enclave key's own access control. CryptoKit's default is "when unlocked", which
    // would make every refresh of a locked phone fail; after first unlock matches the item.
    private func enclaveAccessControl() throws -> SecAccessControl {
        var error: Unmanaged<CFError>?
        guard let control = SecAccessControlCreateWithFlags(
            kCFAllocatorDefault, kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly, .privateKeyUsage, &error)
        else {
            let code = error.map { CFErrorGetCode($0.takeRetainedValue()) } ?? 0
            throw DpopKeyError.Failed(reason: "Secure Enclave: could not create the key's access control (CFError \(code))")
        }
        return control
    }

    private func enclaveKey(_ data: Data) throws -> SecureEnclave.P256.Signing.PrivateKey {
        // Fails when the blob belongs to another device's enclave (it never should: the
        // item is ThisDeviceOnly) or the enclave was reset.
        try failing("open the Secure Enclave key") { try SecureEnclave.P256.Signing.PrivateKey(dataRepresentation: data) }
    }

    private func softwareKey(_ data: Data) throws -> P256.Signing.PrivateKey {
        try failing("read the DPoP key") { try P256.Signing.PrivateKey(rawRepresentation: data) }
    }

    /// Runs `body`, turning a CryptoKit error into `DpopKeyError.Failed` naming `operation`
    /// and the error's type (CryptoKit errors carry codes, not key material).
    private func failing<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as DpopKeyError {
            throw error
        } catch {
            throw DpopKeyError.Failed(reason: "could not \(operation): \(type(of: error)) \(error.localizedDescription)")
        }
    }

    // MARK: - Keychain

    private func query(alias: String) -> [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: alias,
        ]
        if let accessGroup {
            query[kSecAttrAccessGroup as String] = accessGroup
        }
        #if os(macOS)
        // The file-based macOS keychain ignores kSecAttrAccessible; this one honours it.
        query[kSecUseDataProtectionKeychain as String] = true
        #endif
        return query
    }

    private func add(alias: String, kind: Kind, data: Data) throws {
        var item = query(alias: alias)
        item[kSecValueData as String] = data
        item[kSecAttrGeneric as String] = Data(kind.rawValue.utf8)
        item[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        item[kSecAttrSynchronizable as String] = false
        let status = SecItemAdd(item as CFDictionary, nil)
        guard status == errSecSuccess else {
            throw DpopKeyError.Failed(reason: "Keychain: could not store the DPoP key (OSStatus \(status))")
        }
    }

    private func load(alias: String) throws -> (kind: Kind, data: Data)? {
        var request = query(alias: alias)
        request[kSecReturnData as String] = true
        request[kSecReturnAttributes as String] = true
        request[kSecMatchLimit as String] = kSecMatchLimitOne
        var result: CFTypeRef?
        let status = SecItemCopyMatching(request as CFDictionary, &result)
        switch status {
        case errSecSuccess:
            break
        case errSecItemNotFound:
            return nil
        default:
            // errSecInteractionNotAllowed before the first unlock, among others: a
            // passing failure, not a lost key, so the session is kept.
            throw DpopKeyError.Failed(reason: "Keychain: could not read the DPoP key (OSStatus \(status))")
        }
        guard let attributes = result as? [String: Any],
              let data = attributes[kSecValueData as String] as? Data,
              let marker = attributes[kSecAttrGeneric as String] as? Data,
              let kind = Kind(rawValue: String(decoding: marker, as: UTF8.self))
        else {
            throw DpopKeyError.Failed(reason: "Keychain: the item under \(alias) is not a tokenkeeper DPoP key")
        }
        return (kind, data)
    }
}
#endif
