package dev.tokenkeeper

import java.math.BigInteger
import java.security.KeyFactory
import java.security.KeyPairGenerator
import java.security.interfaces.ECPublicKey
import java.security.spec.ECGenParameterSpec
import java.security.spec.ECPoint
import java.security.spec.ECPublicKeySpec
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows

/** [DpopPublicKeys.sec1Uncompressed], the conversion both Kotlin key homes use; no server. */
class DpopPublicKeysTest {

    private fun ecKey(curve: String = "secp256r1"): ECPublicKey =
        KeyPairGenerator.getInstance("EC").run {
            initialize(ECGenParameterSpec(curve))
            generateKeyPair().public as ECPublicKey
        }

    @Test
    fun `a P-256 key is 0x04, x and y, 32 bytes each`() {
        val key = ecKey()
        val point = DpopPublicKeys.sec1Uncompressed(key)
        assertEquals(65, point.size)
        assertEquals(0x04.toByte(), point[0])
        assertEquals(key.w.affineX, BigInteger(1, point.copyOfRange(1, 33)))
        assertEquals(key.w.affineY, BigInteger(1, point.copyOfRange(33, 65)))
    }

    @Test
    fun `a coordinate with leading zero bytes is left-padded to 32 bytes`() {
        // About one key in 128 has a coordinate below 2^248. Rather than generate keys until
        // one does, a spec on P-256 with a 2-byte x and a y whose top bit is set (a 33-byte
        // toByteArray) exercises both paddings; SunEC's KeyFactory does not check that the
        // point is on the curve, and the encoder does not need it to be.
        val params = ecKey().params
        val x = BigInteger.valueOf(0x1234)
        val y = BigInteger.ONE.shiftLeft(255).add(BigInteger.valueOf(7)) // top bit set: 33-byte toByteArray
        val key = KeyFactory.getInstance("EC").generatePublic(ECPublicKeySpec(ECPoint(x, y), params))
        val point = DpopPublicKeys.sec1Uncompressed(key)
        assertEquals(65, point.size)
        assertArrayEquals(ByteArray(30) + byteArrayOf(0x12, 0x34), point.copyOfRange(1, 33))
        assertEquals(y, BigInteger(1, point.copyOfRange(33, 65)))
    }

    @Test
    fun `keys on other curves and RSA keys are refused with a reason`() {
        val p384 = assertThrows<DpopKeyException.Failed> { DpopPublicKeys.sec1Uncompressed(ecKey("secp384r1")) }
        assertEquals("the DPoP public key is not on P-256", p384.reason)
        val rsa = KeyPairGenerator.getInstance("RSA").run {
            initialize(2048)
            generateKeyPair().public
        }
        val refused = assertThrows<DpopKeyException.Failed> { DpopPublicKeys.sec1Uncompressed(rsa) }
        assertEquals("the DPoP public key is RSA, not EC", refused.reason)
    }
}
