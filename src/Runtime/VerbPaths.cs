namespace PrunerZero.Runtime;

/// <summary>
/// The one rule every verb applies to its paths, before any work (issue 22):
/// - an input file where a file is expected is a regular file (not a folder, a device such as /dev/zero, a FIFO);
/// - no output is any input of the same command: not the same file (compared by device and inode, so through
///   symlinks, hard links and "..", or by real path where stat is unavailable), not inside an input folder
///   (a checkpoint folder's every file is an input: config, weights, tokenizer files);
/// - a checkpoint is never written into a folder that already holds files of a checkpoint;
/// - every output can be written (a file where a folder is expected, a read-only mount: refused).
/// A refusal is one line naming the flag, the path and why (a <see cref="PrunerZeroException"/>: exit 1).
/// Declare every input first, then check each output.
/// </summary>
public sealed class VerbPaths
{
    readonly List<(string Flag, string Path)> _files = [];
    readonly List<(string Flag, string Path)> _folders = [];

    /// <summary>An input file (a missing one is left to the loader's own message; null: not given).</summary>
    public VerbPaths InputFile(string flag, string? path)
    {
        if (path is null) return this;
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a file");
        if (Path.Exists(path)) PathSafety.RequireRegularFile(path, flag);
        _files.Add((flag, path));
        return this;
    }

    /// <summary>An input folder (a checkpoint, a task-data folder): every file in it is an input.</summary>
    public VerbPaths InputFolder(string flag, string? path)
    {
        if (path is null) return this;
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a folder");
        if (File.Exists(path)) throw new PrunerZeroException($"{flag} {path} is a file, not a folder");
        // Its files are read (and hashed) whole: a device or FIFO among them would hang or never end.
        foreach (var f in PathSafety.CheckpointFilesIn(path)) PathSafety.RequireRegularFile(Path.Combine(path, f), flag);
        _folders.Add((flag, path));
        return this;
    }

    /// <summary>An output file: not any input, writable (created or opened without changing it).</summary>
    public void OutputFile(string flag, string? path)
    {
        if (path is null) return;
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a file name");
        NotAnInput(flag, path, isFolder: false);
        // A character device (/dev/null) may take the output; a block device (a disk), a FIFO (the probe would block) or a socket may not.
        if (Path.Exists(path) && !Directory.Exists(path) && PathSafety.Stat(path) is { IsRegular: false } s && (s.Mode & 0xF000) != 0x2000)
            throw new PrunerZeroException($"{flag} {path} is {s.Kind}, not a regular file to write");
        PathSafety.WritableFile(path, flag);
    }

    /// <summary>
    /// An output folder the verb writes files into (a run, a cache): not any input folder nor inside one, holding no
    /// input file where the verb writes (<paramref name="writes"/>: the file names, or a subfolder written whole), writable.
    /// </summary>
    public void OutputFolder(string flag, string path, IEnumerable<string>? writes = null, string? subfolder = null)
    {
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a folder");
        NotAnInput(flag, path, isFolder: true);
        if (subfolder != null) NotAnInput(flag, Path.Combine(path, subfolder), isFolder: true);
        foreach (var name in writes ?? [])
            NotAnInput(flag, Path.Combine(path, name), isFolder: false);
        PathSafety.WritableDirectory(path, flag);
    }

    /// <summary>An output checkpoint folder: not an input, not holding another checkpoint's files, no input inside it, writable.</summary>
    public void OutputCheckpoint(string flag, string path)
    {
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a folder");
        NotAnInput(flag, path, isFolder: true);
        var held = PathSafety.CheckpointFilesIn(path);
        if (held.Count > 0)
            throw new PrunerZeroException($"{flag} {path} already holds checkpoint files ({string.Join(", ", held.Take(4))}{(held.Count > 4 ? ", ..." : "")}); writing a checkpoint there would overwrite or mix with them: choose an empty or new folder");
        foreach (var (f, p) in _files)
            if (PathSafety.IsWithin(p, path))
                throw new PrunerZeroException($"{flag} {path} holds the input {f} {p}; a checkpoint written there could replace it: choose an empty or new folder");
        PathSafety.WritableDirectory(path, flag);
    }

    /// <summary>A folder the verb writes (train's --out, also on --resume): no input file may lie in it.</summary>
    public void NoInputInside(string flag, string path)
    {
        if (path.Length == 0) throw new PrunerZeroException($"{flag} is empty: give a folder");
        foreach (var (f, p) in _files)
            if (PathSafety.IsWithin(p, path))
                throw new PrunerZeroException($"{flag} {path} holds the input {f} {p}; writing there could replace it: keep inputs outside the output folder");
    }

    void NotAnInput(string flag, string path, bool isFolder)
    {
        foreach (var (f, dir) in _folders)
        {
            if (PathSafety.IsWithin(path, dir))
                throw new PrunerZeroException(PathSafety.SameLocation(path, dir) || (isFolder && Directory.Exists(path) && PathSafety.SameFile(path, dir))
                    ? $"{flag} {path} is the input {f} folder {dir} (the same folder as {PathSafety.RealPath(dir)}); writing there would alter it: choose another path"
                    : $"{flag} {path} is inside the input {f} folder {dir}; writing there would alter it: choose another path");
            if (!isFolder && File.Exists(path) && Directory.Exists(dir))
                foreach (var file in Directory.EnumerateFiles(dir))
                    if (PathSafety.SameFile(path, file))
                        throw new PrunerZeroException($"{flag} {path} is the file {file} of the input {f} (the same file: a link to it); writing there would destroy it: choose another path");
        }
        foreach (var (f, file) in _files)
        {
            if (Path.Exists(path) && Path.Exists(file) ? PathSafety.SameFile(path, file) : PathSafety.SameLocation(path, file))
                throw new PrunerZeroException($"{flag} {path} is the input {f} {file}{(PathSafety.SameLocation(path, file) ? "" : " (the same file: a link to it)")}; writing there would destroy it: choose another path");
        }
    }
}
