import Foundation
import PackagePlugin

/// Writes `GitVersion.swift` before every build: the checkout's `git describe --always --dirty`, or nil
/// when the sources are not a git checkout (a tarball) or git is missing.
///
/// `--no-optional-locks` keeps git from refreshing the index, so a build never writes into `.git`. The
/// file is only replaced when its text changes, so an unchanged checkout does not rebuild anything.
@main struct GitVersion: BuildToolPlugin {
  /// One prebuild command that runs the script below with /bin/sh.
  func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
    let output = context.pluginWorkDirectoryURL.appending(path: "GitVersion")
    let script = """
      mkdir -p "$2" || exit 1
      d=$(git --no-optional-locks -C "$1" describe --always --dirty 2>/dev/null)
      case "$d" in
        *[!A-Za-z0-9._+-]*|'') v=nil ;;
        *) v="\\"$d\\"" ;;
      esac
      printf '/// `git describe --always --dirty` of the checkout this binary was built from; nil outside git.\\n' > "$2/GitVersion.swift.new"
      printf 'let gitDescribe: String? = %s\\n' "$v" >> "$2/GitVersion.swift.new"
      if cmp -s "$2/GitVersion.swift.new" "$2/GitVersion.swift"; then
        rm -f "$2/GitVersion.swift.new"
      else
        mv "$2/GitVersion.swift.new" "$2/GitVersion.swift"
      fi
      """
    return [
      .prebuildCommand(
        displayName: "Recording git describe for smptop --version",
        executable: URL(fileURLWithPath: "/bin/sh"),
        arguments: ["-c", script, "sh", context.package.directoryURL.path, output.path],
        outputFilesDirectory: output)
    ]
  }
}
