// Hand-written: the one conversion every Kotlin PlatformDpopKeys needs. The key logic
// (thumbprints, JWKs, proofs) stays in Rust; this only puts a Java public key into the
// bytes the core reads.
package dev.tokenkeeper

import java.math.BigInteger
import java.security.PublicKey
import java.security.interfaces.ECPublicKey

/**
 * Public keys in the encoding [PlatformDpopKeys] returns: SEC 1 §2.3.3 uncompressed,
 * `0x04 || x || y`, each coordinate 32 bytes big-endian and left-padded (65 bytes).
 *
 * Used by `AndroidKeystoreDpopKeys` (the certificate of an AndroidKeyStore entry) and by
 * the JVM tests' software key; an app writing its own [PlatformDpopKeys] over the Java
 * security API can use it too.
 */
object DpopPublicKeys {
    /** Bytes of one P-256 coordinate. */
    private const val COORDINATE_BYTES = 32

    // P-256's group order n (SEC 2 §2.4.2): with the field size, enough to tell the
    // curve apart from every other named curve a provider may hand back.
    private val P256_ORDER = BigInteger("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)

    /**
     * [key] as 65 bytes `0x04 || x || y`.
     *
     * @throws DpopKeyException.Failed when [key] is not an EC key on P-256 (the only
     *   curve the core signs DPoP proofs with, ES256).
     */
    fun sec1Uncompressed(key: PublicKey): ByteArray {
        val ec = key as? ECPublicKey
            ?: throw DpopKeyException.Failed("the DPoP public key is ${key.algorithm}, not EC")
        val params = ec.params
        if (params.curve.field.fieldSize != COORDINATE_BYTES * 8 || params.order != P256_ORDER) {
            throw DpopKeyException.Failed("the DPoP public key is not on P-256")
        }
        val out = ByteArray(1 + 2 * COORDINATE_BYTES)
        out[0] = 0x04
        writeCoordinate(ec.w.affineX, out, 1)
        writeCoordinate(ec.w.affineY, out, 1 + COORDINATE_BYTES)
        return out
    }

    // BigInteger.toByteArray is minimal two's complement: a leading 0x00 sign byte when
    // the top bit is set (33 bytes), and fewer than 32 bytes when the value is small
    // (about one key in 128 has a coordinate below 2^248). Both must come out as 32.
    private fun writeCoordinate(value: BigInteger, out: ByteArray, offset: Int) {
        val bytes = value.toByteArray()
        val start = bytes.indexOfFirst { it != 0.toByte() }.let { if (it < 0) bytes.size else it }
        val length = bytes.size - start
        if (value.signum() < 0 || length > COORDINATE_BYTES) {
            throw DpopKeyException.Failed("the DPoP public key has a coordinate outside P-256's field")
        }
        System.arraycopy(bytes, start, out, offset + COORDINATE_BYTES - length, length)
    }
}
