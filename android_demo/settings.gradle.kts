pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "pocketlm-demo"
// core: plain Kotlin (bundle, tokenizer, generation, tasks, benchmark) — tested on the JVM.
// app: the Android shell (Compose screens, ExecuTorch / LiteRT engines, benchmark activity).
include(":core", ":app")
