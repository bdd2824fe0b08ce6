// What makes two fitness values comparable, announced by every worker and checked by the search:
// content hashes of the model (its config, weights and tokenizer files), the evaluation data and the
// calibration text, plus the sampling and target settings and the screen windows. Paths do not count
// (machines keep their copies in different places); contents do.
using System.Security.Cryptography;

namespace PrunerZero.Cluster;

public static class ProtocolId
{
    /// <summary>The protocol as ordered key=value pairs.</summary>
    public static string Describe(string modelDir, string evalPath, string calibPath, IEnumerable<(string Key, string Value)> settings)
    {
        var parts = new List<string>
        {
            $"model_sha256={ModelHash(modelDir)}",
            $"data_sha256={FileHash(evalPath)}",
            $"calib_sha256={FileHash(calibPath)}",
        };
        parts.AddRange(settings.Select(s => $"{s.Key}={s.Value}"));
        return string.Join("; ", parts);
    }

    /// <summary>The fields that differ between two protocols, "key: A vs B", empty when they agree.</summary>
    public static List<string> Differences(string expected, string actual)
    {
        var a = Split(expected);
        var b = Split(actual);
        return [.. a.Keys.Union(b.Keys).Order(StringComparer.Ordinal)
            .Where(k => a.GetValueOrDefault(k) != b.GetValueOrDefault(k))
            .Select(k => $"{k}: {Short(a.GetValueOrDefault(k))} here vs {Short(b.GetValueOrDefault(k))} on the worker")];
    }

    static Dictionary<string, string> Split(string p) =>
        p.Split("; ", StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2))
         .ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "", StringComparer.Ordinal);

    static string Short(string? v) => v is null ? "(none)" : v.Length == 64 && v.All(char.IsAsciiHexDigit) ? v[..12] : v;

    /// <summary>Files that determine the model's numbers: config, weights (safetensors / .bin / index) and tokenizer files.</summary>
    public static string ModelHash(string dir)
    {
        if (!Directory.Exists(dir)) return "missing:" + Path.GetFileName(dir);
        var files = Directory.EnumerateFiles(dir)
            .Where(f => Path.GetFileName(f) is var n && (n == "config.json" || n.EndsWith(".safetensors", StringComparison.Ordinal)
                        || n.EndsWith(".bin", StringComparison.Ordinal) || n.EndsWith(".index.json", StringComparison.Ordinal)
                        || n.StartsWith("tokenizer", StringComparison.Ordinal) || n == "special_tokens_map.json"))
            .Order(StringComparer.Ordinal).ToList();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        foreach (var f in files)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(f) + "\n"));
            using var s = File.OpenRead(f);
            int n;
            while ((n = s.Read(buf)) > 0) sha.AppendData(buf, 0, n);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    public static string FileHash(string path)
    {
        if (!File.Exists(path)) return "missing:" + Path.GetFileName(path);
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }
}
