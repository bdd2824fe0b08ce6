namespace PrunerZero.Runtime;

/// <summary>
/// A full disk is the user's to fix, so it must read as a one-line error that names the folder and the bytes,
/// not as an IOException halfway through a checkpoint. Big writes (checkpoints, G cache entries) check free
/// space before they start; anything else that meets a full disk is recognised by <see cref="IsFull"/>.
/// </summary>
public static class DiskSpace
{
    /// <summary>Throws a <see cref="PrunerZeroException"/> when the file system holding <paramref name="path"/> has fewer than <paramref name="bytes"/> free.</summary>
    public static void Require(string path, long bytes)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        long free;
        // Where the file system cannot report its free space, the write's own error (IsFull) is what the user sees.
        try { free = new DriveInfo(dir).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return; }
        if (free < bytes)
            throw new PrunerZeroException($"not enough disk space to write {path}: it needs {Format(bytes)} and {dir} has {Format(free)} free");
    }

    /// <summary>
    /// True when <paramref name="e"/> or an exception inside it reports a full disk: ENOSPC (28, which .NET on Unix
    /// puts in HResult) or Windows' ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL.
    /// </summary>
    public static bool IsFull(Exception? e)
    {
        for (; e != null; e = e.InnerException)
            if (e is IOException io && (io.HResult == 28 || (io.HResult & 0xFFFF) is 112 or 39)) return true;
        return false;
    }

    public static string Format(long bytes) => bytes >= 1L << 30 ? LlamaModel.Gib(bytes)
        : bytes >= 1L << 20 ? $"{bytes / (double)(1L << 20):0.0} MiB" : $"{bytes} bytes";
}
