package dev.tokenkeeper

import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.TimeUnit
import okhttp3.FormBody
import okhttp3.HttpUrl.Companion.toHttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import org.junit.jupiter.api.Assertions.assertEquals

/** A browser that does not follow redirects: the tests want to see where it is sent. */
internal val testBrowser: OkHttpClient = OkHttpClient.Builder()
    .followRedirects(false)
    .callTimeout(10, TimeUnit.SECONDS)
    .build()

/**
 * The user at the development server's login page: opens the authorization URL,
 * submits the test login, returns the redirect URL.
 */
internal fun browserLogin(url: String, username: String, password: String): String {
    testBrowser.newCall(Request.Builder().url(url).build()).execute().use {
        assertEquals(200, it.code)
    }
    val parsed = url.toHttpUrl()
    val form = FormBody.Builder()
    for (name in parsed.queryParameterNames) form.add(name, parsed.queryParameter(name)!!)
    form.add("username", username).add("password", password)
    val action = parsed.newBuilder().query(null).build()
    testBrowser.newCall(Request.Builder().url(action).post(form.build()).build()).execute().use {
        assertEquals(303, it.code)
        return it.header("Location")!!
    }
}

/** A TokenStore an app would back with encrypted preferences; here a map. */
internal class MapStore : TokenStore {
    val tokens = ConcurrentHashMap<String, String>()
    override fun load(key: String): String? = tokens[key]
    override fun save(key: String, refreshToken: String) {
        tokens[key] = refreshToken
    }
    override fun remove(key: String) {
        tokens.remove(key)
    }
}
