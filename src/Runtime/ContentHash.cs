using System.Security.Cryptography;
using System.Text;

namespace PrunerZero.Runtime;

/// <summary>
/// SHA-256 of file contents, for identities that must not be fooled by a name, a size or a time stamp (search
/// runs, the gradient cache). Never memoised by file metadata: `cp -p` or `touch -r` keep those while the bytes
/// change. Reading costs about one second per 1-2 GB.
/// </summary>
public static class ContentHash
{
    /// <summary>Lower-case hex SHA-256 of the file's bytes.</summary>
    public static string OfFile(string path)
    {
        if (!File.Exists(path)) throw new PrunerZeroException($"file not found: {path}");
        PathSafety.RequireRegularFile(path, "input");   // a device or FIFO would never end
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            return Convert.ToHexString(SHA256.HashData(fs)).ToLowerInvariant();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new PrunerZeroException($"cannot read {path}: {e.Message}");
        }
    }

    /// <summary>The files of a checkpoint folder that fix the model's math and its tokens.</summary>
    public static IEnumerable<string> CheckpointFiles(string dir) =>
        new[] { "config.json", "model.safetensors.index.json" }
            .Concat(Directory.EnumerateFiles(dir, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal)!)
            .Concat(TextTokenizer.Files)
            .Where(n => File.Exists(Path.Combine(dir, n!)))
            .Distinct()!;

    /// <summary>One SHA-256 over (name, content hash) of every checkpoint file (see <see cref="CheckpointFiles"/>).</summary>
    public static string OfCheckpoint(string dir)
    {
        Checkpoint.RequireDirectory(dir);
        var sb = new StringBuilder();
        foreach (var name in CheckpointFiles(dir)) sb.Append(name).Append(' ').Append(OfFile(Path.Combine(dir, name))).Append('\n');
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString()))).ToLowerInvariant();
    }
}
