using System.Runtime.InteropServices;

namespace PrunerZero.Runtime;

/// <summary>
/// Output paths checked before any work: where a path really points (symlinks resolved), whether two paths are
/// the same place, and whether a folder or file can be written. A refusal here costs nothing; finding out after
/// the pruning or scoring costs the work, and writing over the input costs the input.
/// </summary>
public static class PathSafety
{
    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    static extern IntPtr RealPathC(string path, IntPtr resolved);

    [DllImport("libc", EntryPoint = "free")]
    static extern void Free(IntPtr p);

    /// <summary>
    /// The location the file system will use for <paramref name="path"/>: .NET normalises ".." lexically
    /// (Path.GetFullPath), then every symlink of the longest existing prefix is resolved; a missing tail is appended.
    /// </summary>
    public static string RealPath(string path)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (OperatingSystem.IsWindows()) return full;
        string existing = full, tail = "";
        while (!Path.Exists(existing))
        {
            string? parent = Path.GetDirectoryName(existing);
            if (parent is null) return full;
            tail = tail.Length == 0 ? Path.GetFileName(existing) : Path.Combine(Path.GetFileName(existing), tail);
            existing = parent;
        }
        IntPtr p = RealPathC(existing, IntPtr.Zero);
        if (p == IntPtr.Zero) return full;
        try
        {
            string real = Marshal.PtrToStringUTF8(p)!;
            return tail.Length == 0 ? real : Path.Combine(real, tail);
        }
        finally { Free(p); }
    }

    public static bool SameLocation(string a, string b) => RealPath(a) == RealPath(b);

    /// <summary>Refuses an output folder that is the input folder (also through a symlink or "..").</summary>
    public static void NotTheInput(string outDir, string inputDir, string flag)
    {
        if (SameLocation(outDir, inputDir))
            throw new PrunerZeroException($"{flag} {outDir} is the input checkpoint {inputDir} (same folder as {RealPath(inputDir)}); writing there would destroy it: choose another folder");
    }

    /// <summary>Proves a file can be written in the folder; the probe, and any folder it had to create, are removed again.</summary>
    public static void WritableDirectory(string dir, string flag)
    {
        if (File.Exists(dir)) throw new PrunerZeroException($"{flag} {dir} is a file, not a folder");
        string probe = Path.Combine(dir, $".pz-write-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        // The topmost folder this probe creates is removed again: a command that fails later leaves no trace.
        string? created = null;
        for (var d = Path.GetFullPath(dir); d != null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) created = d;
        try
        {
            Directory.CreateDirectory(dir);
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write)) { }
            File.Delete(probe);
            if (created != null) Directory.Delete(created, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new PrunerZeroException($"{flag} {dir} cannot be written: {e.Message}");
        }
    }

    /// <summary>Proves the file can be written (created, or opened for writing without changing it) before the work.</summary>
    public static void WritableFile(string path, string flag)
    {
        if (Directory.Exists(path)) throw new PrunerZeroException($"{flag} {path} is a folder, not a file");
        string? parent = Path.GetDirectoryName(Path.GetFullPath(path));
        if (parent != null && !Directory.Exists(parent))
            throw new PrunerZeroException($"{flag} {path} cannot be written: the folder {parent} does not exist");
        bool existed = File.Exists(path);
        try
        {
            using (new FileStream(path, existed ? FileMode.Open : FileMode.CreateNew, FileAccess.Write)) { }
            if (!existed) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw new PrunerZeroException($"{flag} {path} cannot be written: {e.Message}");
        }
    }
}
