plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

android {
    namespace = "dev.pocketlm.demo"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.pocketlm.demo" // sdk_python/profiling/devices.py ANDROID_PACKAGE
        minSdk = 28 // ExecuTorch's AAR and LiteRT both support API 26+; 28 keeps /proc/self/status and mmap behaviour uniform
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += listOf("arm64-v8a", "x86_64") }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug") // a demo: installable without a keystore
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    buildFeatures { compose = true }
    // The health notes and the benchmark prompt are the SDK's own files, not copies.
    sourceSets["main"].assets.srcDir(layout.buildDirectory.dir("generated/pocketlm-assets"))
    packaging { jniLibs { useLegacyPackaging = true } } // .pte files are mmapped; keep native libs extractable
}

kotlin { jvmToolchain(17) }

val copySdkData by tasks.registering(Copy::class) {
    from(rootProject.file("../sdk_python/data")) { include("health_knowledge.md", "profile_prompt.txt") }
    into(layout.buildDirectory.dir("generated/pocketlm-assets"))
}
tasks.named("preBuild") { dependsOn(copySdkData) }

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
    implementation(libs.litert)
    implementation(platform(libs.compose.bom))
    implementation(libs.compose.material3)
    implementation(libs.compose.ui)
    implementation(libs.compose.ui.tooling.preview)
    implementation(libs.activity.compose)
    implementation(libs.lifecycle.viewmodel.compose)
}
