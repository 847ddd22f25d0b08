// Plain Kotlin, no Android: everything here runs (and is tested) on any JVM.
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // org.json is part of Android; on the JVM the tests bring it (the same API, Android's implementation
    // in run-jvm-tests.sh, the JSON.org one here).
    compileOnly(libs.org.json)
    testImplementation(libs.org.json)
    testImplementation(libs.kotlin.test.junit5)
    testImplementation(libs.junit.jupiter)
}

tasks.test {
    useJUnitPlatform()
    // The shared vectors are written by the Python tests: `pytest tests/test_app_contract.py` runs
    // run-jvm-tests.sh with this set; set it yourself to run `gradle :core:test` on vectors you wrote.
    System.getenv("POCKETLM_VECTORS")?.let { environment("POCKETLM_VECTORS", it) }
}
