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
        if (string.IsNullOrWhiteSpace(path)) throw new PrunerZeroException("an empty path was given where a file or folder is expected");
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
        if (string.IsNullOrWhiteSpace(outDir)) throw new PrunerZeroException($"{flag} is empty: give a folder");
        if (SameLocation(outDir, inputDir))
            throw new PrunerZeroException($"{flag} {outDir} is the input checkpoint {inputDir} (same folder as {RealPath(inputDir)}); writing there would destroy it: choose another folder");
    }

    /// <summary>Proves a file can be written in the folder; the probe, and any folder it had to create, are removed again.</summary>
    public static void WritableDirectory(string dir, string flag)
    {
        if (string.IsNullOrWhiteSpace(dir)) throw new PrunerZeroException($"{flag} is empty: give a folder");
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
        if (string.IsNullOrWhiteSpace(path)) throw new PrunerZeroException($"{flag} is empty: give a file name");
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

    // ---- file identity and kind (stat) ----

    [DllImport("libc", EntryPoint = "stat", SetLastError = true)]
    static extern int StatC(string path, byte[] buf);

    /// <summary>What stat(2) says of a path (symlinks followed): device, inode and file type; null where unknown (no such path, not Linux x64/arm64).</summary>
    public sealed record FileStat(ulong Device, ulong Inode, uint Mode)
    {
        const uint TypeMask = 0xF000;
        public bool IsRegular => (Mode & TypeMask) == 0x8000;
        public bool IsDirectory => (Mode & TypeMask) == 0x4000;
        public string Kind => (Mode & TypeMask) switch
        {
            0x8000 => "a regular file", 0x4000 => "a folder", 0x2000 => "a character device", 0x6000 => "a block device",
            0x1000 => "a named pipe (FIFO)", 0xC000 => "a socket", 0xA000 => "a symbolic link", _ => "not a regular file",
        };
    }

    public static FileStat? Stat(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        int modeOffset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24,      // st_dev, st_ino, st_nlink (8 bytes each), st_mode
            Architecture.Arm64 => 16,    // the generic layout: st_dev, st_ino, st_mode, st_nlink (4 bytes)
            _ => -1,
        };
        if (modeOffset < 0) return null;
        var buf = new byte[256];
        try { if (StatC(path, buf) != 0) return null; }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return null; }
        return new FileStat(BitConverter.ToUInt64(buf, 0), BitConverter.ToUInt64(buf, 8), BitConverter.ToUInt32(buf, modeOffset));
    }

    /// <summary>The same file or folder: the same device and inode (hard links, symlinks, bind mounts), else the same real path.</summary>
    public static bool SameFile(string a, string b)
    {
        var (sa, sb) = (Stat(a), Stat(b));
        if (sa != null && sb != null) return sa.Device == sb.Device && sa.Inode == sb.Inode;
        return SameLocation(a, b);
    }

    /// <summary>Whether <paramref name="path"/> (existing or not) lies in <paramref name="dir"/> or is it: any existing ancestor of its real path is that folder.</summary>
    public static bool IsWithin(string path, string dir)
    {
        var d = Stat(dir);
        string? p = RealPath(path);
        string realDir = RealPath(dir);
        for (; p != null; p = Path.GetDirectoryName(p))
        {
            if (p == realDir) return true;
            if (d != null && Stat(p) is { } s && s.Device == d.Device && s.Inode == d.Inode) return true;
        }
        return false;
    }

    /// <summary>
    /// An input file where a file is expected: a folder, a device (/dev/zero), a FIFO or a socket is refused in one
    /// line (reading one would hang or never end). A missing file is left to the caller's own message.
    /// </summary>
    public static void RequireRegularFile(string path, string what)
    {
        if (Directory.Exists(path)) throw new PrunerZeroException($"{what} {path} is a folder, not a file");
        if (Stat(path) is { IsRegular: false } s) throw new PrunerZeroException($"{what} {path} is {s.Kind}, not a regular file");
    }

    /// <summary>All bytes of a regular file of at most <paramref name="maxBytes"/> (said in the refusal).</summary>
    public static byte[] ReadAllBytesBounded(string path, string what, long maxBytes)
    {
        RequireRegularFile(path, what);
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (fs.Length > maxBytes) throw new PrunerZeroException($"{what} {path} is {fs.Length.ToString("N0", System.Globalization.CultureInfo.InvariantCulture)} bytes, more than the {Bound(maxBytes)} this file may have");
            var ms = new MemoryStream();
            var buffer = new byte[1 << 16];
            int n;
            while ((n = fs.Read(buffer)) > 0)
            {
                if (ms.Length + n > maxBytes) throw new PrunerZeroException($"{what} {path} has more than the {Bound(maxBytes)} this file may have");
                ms.Write(buffer, 0, n);
            }
            return ms.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PrunerZeroException($"cannot read {what} {path}: {e.Message}");
        }
    }

    /// <summary>A UTF-8 text file (a JSON file) read whole, at most <paramref name="maxBytes"/>.</summary>
    public static string ReadAllTextBounded(string path, string what, long maxBytes) =>
        System.Text.Encoding.UTF8.GetString(ReadAllBytesBounded(path, what, maxBytes));

    /// <summary>A short UTF-8 text file (a metric library): invalid UTF-8 or a NUL byte (a binary file) is refused with its byte offset.</summary>
    public static string ReadTextBounded(string path, string what, long maxBytes)
    {
        var bytes = ReadAllBytesBounded(path, what, maxBytes);
        int nul = Array.IndexOf(bytes, (byte)0);
        if (nul >= 0) throw new PrunerZeroException($"{what} {path} is not a text file (a NUL byte at byte {nul})");
        try { return new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (System.Text.DecoderFallbackException e)
        {
            throw new PrunerZeroException($"{what} {path}: invalid UTF-8 at byte {e.Index}; text files must be UTF-8");
        }
    }

    /// <summary>The size bound of JSON files of a checkpoint (config.json, tokenizer files, the shard index).</summary>
    public const long MaxJsonBytes = 256L << 20;

    public static string Bound(long bytes) => bytes >= 1L << 30 && bytes % (1L << 30) == 0 ? $"{bytes >> 30} GiB"
        : bytes >= 1L << 20 && bytes % (1L << 20) == 0 ? $"{bytes >> 20} MiB" : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{bytes:N0} bytes");

    // ---- what a checkpoint folder holds ----

    /// <summary>Files that make a folder a checkpoint (or part of one): writing a checkpoint there would mix two models.</summary>
    public static readonly string[] CheckpointFileNames =
        ["config.json", "model.safetensors.index.json", "generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"];

    /// <summary>The checkpoint files in <paramref name="dir"/> (names from <see cref="CheckpointFileNames"/> and any *.safetensors / *.bin weights); empty when it has none.</summary>
    public static List<string> CheckpointFilesIn(string dir)
    {
        if (!Directory.Exists(dir)) return [];
        return [.. Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).OfType<string>()
            .Where(n => CheckpointFileNames.Contains(n) || n.EndsWith(".safetensors", StringComparison.Ordinal)
                        || (n.StartsWith("pytorch_model", StringComparison.Ordinal) && n.EndsWith(".bin", StringComparison.Ordinal)))
            .Order(StringComparer.Ordinal)];
    }
}
