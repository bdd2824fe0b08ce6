using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Parquet;

namespace PrunerZero.Runtime;

/// <summary>
/// Evaluation and calibration text. WikiText-2 rows are produced exactly as Hugging Face's
/// wikitext-2-raw-v1 gives them (each non-blank line with its newline, a blank line as an empty row), from
/// the raw files or from the HF parquet files, and joined with "\n\n" as Wanda, SparseGPT and Pruner-Zero do.
/// </summary>
public static class TextData
{
    /// <summary>The rows of a wikitext split, from `wiki.*.raw` or a parquet file with a `text` column.</summary>
    public static List<string> WikiTextRows(string path)
    {
        PathSafety.RequireRegularFile(path, "dataset");
        if (!File.Exists(path)) throw new PrunerZeroException($"dataset file not found: {path}");
        var rows = path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) ? ParquetText(path) : RawRows(path);
        if (rows.All(r => r.Length == 0)) throw new PrunerZeroException($"{path}: the dataset is empty");
        return rows;
    }

    /// <summary>HF's wikitext builder: `for row in f: yield row if row.strip() else ""` (row keeps its "\n").</summary>
    static List<string> RawRows(string path)
    {
        string all = ReadUtf8(path);
        var rows = new List<string>();
        int start = 0;
        while (start < all.Length)
        {
            int nl = all.IndexOf('\n', start);
            int end = nl < 0 ? all.Length : nl + 1;
            string row = all[start..end];
            rows.Add(string.IsNullOrWhiteSpace(row) ? "" : row);
            start = end;
        }
        return rows;
    }

    static List<string> ParquetText(string path)
    {
        try { return ParquetTextAsync(path).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is not PrunerZeroException)
        {
            throw new PrunerZeroException($"{path}: cannot read parquet ({e.Message})");
        }
    }

    static async Task<List<string>> ParquetTextAsync(string path)
    {
        if (new FileInfo(path).Length > MaxTextBytes)
            throw new PrunerZeroException($"{path}: {new FileInfo(path).Length:N0} bytes, more than the {PathSafety.Bound(MaxTextBytes)} a text input may have (text inputs are read whole)");
        await using var stream = File.OpenRead(path);
        await using var reader = await ParquetReader.CreateAsync(stream);
        var field = reader.Schema.DataFields.FirstOrDefault(f => f.Name == "text")
            ?? throw new PrunerZeroException($"{path}: parquet file has no 'text' column");
        var rows = new List<string>();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            var values = new string?[rg.RowCount];
            await rg.ReadAsync(field, values.AsMemory(), null, default);
            rows.AddRange(values.Select(v => v ?? ""));
        }
        return rows;
    }

    /// <summary>The evaluation text: rows joined with "\n\n".</summary>
    public static string JoinRows(IEnumerable<string> rows) => string.Join("\n\n", rows);

    /// <summary>
    /// Calibration documents: C4-style json / jsonl (optionally .gz) with a `text` field, one document per
    /// line (or a JSON array of objects); any other file is one plain-text document.
    /// </summary>
    public static List<string> CalibrationDocuments(string path)
    {
        PathSafety.RequireRegularFile(path, "calibration file");
        if (!File.Exists(path)) throw new PrunerZeroException($"calibration file not found: {path}");
        string name = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? path[..^3] : path;
        string content = ReadUtf8(path);
        var docs = new List<string>();
        if (name.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase) || name.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            if (content.TrimStart().StartsWith('['))
            {
                try
                {
                    using var doc = JsonDocument.Parse(content);
                    int i = 0;
                    foreach (var e in doc.RootElement.EnumerateArray()) docs.Add(TextField(e, $"{path}: element {i++}"));
                }
                catch (JsonException e) { throw new PrunerZeroException($"{path}:{e.LineNumber + 1}: not valid JSON ({FirstSentence(e.Message)})"); }
            }
            else
            {
                int lineNo = 0;
                foreach (var line in content.Split('\n'))
                {
                    lineNo++;
                    if (line.Trim().Length == 0) continue;
                    try
                    {
                        using var doc = JsonDocument.Parse(line);
                        docs.Add(TextField(doc.RootElement, $"{path}:{lineNo}"));
                    }
                    catch (JsonException e) { throw new PrunerZeroException($"{path}:{lineNo}: not a valid JSON line ({FirstSentence(e.Message)})"); }
                }
            }
        }
        else docs.Add(content);
        if (docs.All(d => d.Length == 0)) throw new PrunerZeroException($"{path}: the calibration data is empty");
        return docs;
    }

    /// <summary>System.Text.Json's message without its " LineNumber: 0 | BytePositionInLine: n." tail (the caller names the line).</summary>
    static string FirstSentence(string message) =>
        message.IndexOf(" LineNumber:", StringComparison.Ordinal) is int i and > 0 ? message[..i].TrimEnd() : message;

    /// <summary>
    /// A text file (gzip-compressed when it ends in .gz) as UTF-8, a leading BOM dropped. Invalid UTF-8 is refused
    /// with the file and the byte offset of the first bad sequence, never replaced silently: a replaced byte
    /// would change the tokens, and so every number computed from them.
    /// </summary>
    /// <summary>
    /// The most bytes of text (after decompression) an input may have: text inputs are read whole, and a file that
    /// never ends (/dev/zero through a link, a gzip bomb) must stop with a message, not exhaust memory. 512 MiB keeps
    /// the decoded string within .NET's limit; settable for tests.
    /// </summary>
    public static long MaxTextBytes { get; set; } = 512L << 20;

    public static string ReadUtf8(string path)
    {
        bool gz = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase);
        PathSafety.RequireRegularFile(path, "text input");
        byte[] bytes;
        try
        {
            using var raw = File.OpenRead(path);
            if (gz)
            {
                Span<byte> magic = stackalloc byte[2];
                if (raw.ReadAtLeast(magic, 2, throwOnEndOfStream: false) < 2 || magic[0] != 0x1f || magic[1] != 0x8b)
                    throw new PrunerZeroException($"{path}: not a gzip file (the name ends in .gz but the gzip signature 1f 8b is missing)");
                raw.Position = 0;
                using var z = new GZipStream(raw, CompressionMode.Decompress);
                bytes = ReadBounded(z, path, " after decompression");
            }
            else bytes = ReadBounded(raw, path, "");
        }
        catch (InvalidDataException e) { throw new PrunerZeroException($"{path}: damaged gzip data ({e.Message})"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new PrunerZeroException($"cannot read {path}: {e.Message}"); }

        ReadOnlySpan<byte> span = bytes;
        if (span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) span = span[3..];
        var chars = new char[span.Length];
        var status = System.Text.Unicode.Utf8.ToUtf16(span, chars, out int read, out int written, replaceInvalidSequences: false);
        if (status != System.Buffers.OperationStatus.Done)
        {
            long offset = read + (bytes.Length - span.Length);
            throw new PrunerZeroException(
                $"{path}: invalid UTF-8 at byte {offset}{(gz ? " of the decompressed data" : "")} (0x{bytes[offset]:x2}); text files must be UTF-8");
        }
        return new string(chars, 0, written);
    }

    /// <summary>A stream read whole, refused once it passes <see cref="MaxTextBytes"/> (the bound is in the message).</summary>
    static byte[] ReadBounded(Stream s, string path, string where)
    {
        using var ms = new MemoryStream();
        var buffer = new byte[1 << 16];
        int n;
        while ((n = s.Read(buffer)) > 0)
        {
            if (ms.Length + n > MaxTextBytes)
                throw new PrunerZeroException($"{path}: more than {PathSafety.Bound(MaxTextBytes)} of text{where}, the most a text input may have (text inputs are read whole); cut it into a smaller file");
            ms.Write(buffer, 0, n);
        }
        return ms.ToArray();
    }

    static string TextField(JsonElement e, string where) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()!
            : throw new PrunerZeroException($"{where}: record has no string 'text' field");
}
