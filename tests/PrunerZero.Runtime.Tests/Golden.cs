using System.IO.Compression;
using System.Text.Json;

namespace PrunerZero.Runtime.Tests;

/// <summary>The golden files (tests/PrunerZero.Runtime.Tests/golden) and the shipped corpora they were made from.</summary>
public static class Golden
{
    public static readonly string RepoRoot = FindRoot();

    static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "tests", "PrunerZero.Runtime.Tests", "golden")) && Directory.Exists(Path.Combine(d.FullName, "data")))
                return d.FullName;
        throw new DirectoryNotFoundException("tests/PrunerZero.Runtime.Tests/golden not found above the test binaries");
    }

    public static string File(params string[] parts) => Path.Combine([RepoRoot, "tests", "PrunerZero.Runtime.Tests", "golden", .. parts]);

    /// <summary>The corpora of the generators: c4 = the C4 sample's `text` fields joined with "\n\n"; wikitest = wiki.test.raw as is.</summary>
    public static string Corpus(string name) => name switch
    {
        "c4" => string.Join("\n\n", System.IO.File.ReadLines(Path.Combine(RepoRoot, "data", "c4", "c4-train.00000-of-01024.first1000.jsonl"))
            .Where(l => l.Trim().Length > 0)
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)),
        "wikitest" => System.IO.File.ReadAllText(Path.Combine(RepoRoot, "data", "wikitext-2-raw", "wiki.test.raw")),
        _ => throw new ArgumentException(name),
    };

    /// <summary>uint16 little-endian ids, gzip-compressed.</summary>
    public static int[] Ids(string path)
    {
        using var gz = new GZipStream(System.IO.File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        var b = ms.ToArray();
        var ids = new int[b.Length / 2];
        for (int i = 0; i < ids.Length; i++) ids[i] = b[2 * i] | (b[2 * i + 1] << 8);
        return ids;
    }

    /// <summary>A string from its UTF-16 code units (the golden inputs hold lone surrogates, which JSON strings cannot).</summary>
    public static string FromUtf16(JsonElement units) => new([.. units.EnumerateArray().Select(u => (char)u.GetInt32())]);

    /// <summary>Equal id sequences, or a message with the count and the first difference in context.</summary>
    public static void SameIds(IReadOnlyList<int> expected, IReadOnlyList<int> actual, string what)
    {
        int n = Math.Min(expected.Count, actual.Count), i = 0;
        while (i < n && expected[i] == actual[i]) i++;
        if (i == n && expected.Count == actual.Count) return;
        string Around(IReadOnlyList<int> x) => string.Join(",", x.Skip(Math.Max(0, i - 3)).Take(8));
        Assert.Fail($"{what}: {actual.Count} ids, expected {expected.Count}; first difference at {i}: got [{Around(actual)}], expected [{Around(expected)}] (from index {Math.Max(0, i - 3)})");
    }
}
