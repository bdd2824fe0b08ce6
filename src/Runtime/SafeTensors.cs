using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorEntry(string Name, string File, string DType, long[] Shape, long Begin, long End)
{
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// The safetensors format: u64 little-endian header length N, N bytes of JSON
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data, offsets
/// relative to the byte after the header. Every offset and size is checked against the file before use.
/// </summary>
public static class SafeTensors
{
    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["F64"] = (ScalarType.Float64, 8),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    public static string DTypeName(ScalarType t) => DTypes.First(kv => kv.Value.Type == t).Key;

    public static ScalarType ScalarTypeOf(string torchDtype) => torchDtype switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        _ => throw new PrunerZeroException($"unsupported dtype '{torchDtype}'"),
    };

    /// <summary>Reads and validates the header; returns the entries and the offset where data starts.</summary>
    public static (List<SafeTensorEntry> Entries, long DataStart) ReadHeader(string path)
    {
        if (!System.IO.File.Exists(path)) throw new PrunerZeroException($"safetensors file not found: {path}");
        using var fs = System.IO.File.OpenRead(path);
        long length = fs.Length;
        if (length < 8) throw new PrunerZeroException($"{path}: truncated safetensors file ({length} bytes, no header)");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong n = BitConverter.ToUInt64(lenBytes);
        if (n > (ulong)(length - 8))
            throw new PrunerZeroException($"{path}: header length {n} is larger than the file ({length} bytes); the file is truncated or not safetensors");
        if (n > 100_000_000) throw new PrunerZeroException($"{path}: header length {n} is implausibly large");
        var headerBytes = new byte[(int)n];
        fs.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes)) as JsonObject
                ?? throw new JsonException("not an object");
        }
        catch (Exception e) when (e is JsonException or ArgumentException or DecoderFallbackException)
        {
            throw new PrunerZeroException($"{path}: garbled safetensors header ({e.Message})");
        }

        long dataStart = 8 + (long)n, dataLength = length - dataStart;
        var entries = new List<SafeTensorEntry>();
        try
        {
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__") continue;
                entries.Add(Entry(path, name, node, dataLength));
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            // A value of the wrong JSON kind (a string where a number belongs, a fraction, an overflow).
            throw new PrunerZeroException($"{path}: malformed safetensors header ({e.Message})");
        }
        // Every tensor must own its bytes: two entries sharing bytes would alias (writing one changes the other).
        var byStart = entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ToList();
        for (int i = 1; i < byStart.Count; i++)
            if (byStart[i].Begin < byStart[i - 1].End)
                throw new PrunerZeroException(
                    $"{path}: tensors '{byStart[i - 1].Name}' [{byStart[i - 1].Begin}, {byStart[i - 1].End}] and '{byStart[i].Name}' [{byStart[i].Begin}, {byStart[i].End}] overlap; every tensor needs its own bytes");
        return (entries, dataStart);
    }

    static SafeTensorEntry Entry(string path, string name, JsonNode? node, long dataLength)
    {
        if (node is not JsonObject e) throw new PrunerZeroException($"{path}: header entry '{name}' is not an object");
        string dtype = e["dtype"]?.GetValue<string>() ?? throw new PrunerZeroException($"{path}: tensor '{name}' has no dtype");
        if (!DTypes.TryGetValue(dtype, out var dt))
            throw new PrunerZeroException($"{path}: tensor '{name}' has unknown dtype '{dtype}' (known: {string.Join(", ", DTypes.Keys)})");
        var shape = (e["shape"] as JsonArray ?? throw new PrunerZeroException($"{path}: tensor '{name}' has no shape"))
            .Select(x => x?.GetValue<long>() ?? throw new PrunerZeroException($"{path}: tensor '{name}' has a null dimension")).ToArray();
        var offs = e["data_offsets"] as JsonArray;
        if (offs is null || offs.Count != 2 || offs[0] is null || offs[1] is null)
            throw new PrunerZeroException($"{path}: tensor '{name}' has no data_offsets");
        long begin = offs[0]!.GetValue<long>(), end = offs[1]!.GetValue<long>();
        if (shape.Any(d => d < 0)) throw new PrunerZeroException($"{path}: tensor '{name}' has a negative dimension");
        if (begin < 0 || end < begin) throw new PrunerZeroException($"{path}: tensor '{name}' has invalid data_offsets [{begin}, {end}]");
        if (end > dataLength)
            throw new PrunerZeroException($"{path}: tensor '{name}' data_offsets [{begin}, {end}] run past the end of the file (data section is {dataLength} bytes); the file is truncated");
        long bytes = checked(shape.Aggregate(1L, (a, b) => checked(a * b)) * dt.Size);
        if (end - begin != bytes)
            throw new PrunerZeroException($"{path}: tensor '{name}' holds {end - begin} bytes but shape [{string.Join(", ", shape)}] of {dtype} needs {bytes}");
        return new SafeTensorEntry(name, path, dtype, shape, begin, end);
    }

    /// <summary>Reads one tensor into a new CPU tensor of its stored dtype.</summary>
    public static Tensor Read(SafeTensorEntry e, long dataStart)
    {
        var (type, _) = DTypes[e.DType];
        var t = empty(e.Shape, type);
        using var fs = new FileStream(e.File, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        fs.Position = dataStart + e.Begin;
        t.ReadBytesFromStream(fs, 1 << 20);
        return t;
    }

    /// <summary>Writes tensors (already in the wanted dtype, contiguous CPU) as one safetensors file.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            long bytes = t.NumberOfElements * t.ElementSize;
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;   // data stays 8-byte aligned, as the reference writer does
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);

        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            fs.Write(BitConverter.GetBytes((ulong)padded));
            fs.Write(headerBytes);
            foreach (var (_, t) in tensors)
            {
                using var c = t.cpu().contiguous();
                c.WriteBytesToStream(fs, 1 << 20);
            }
        }
        System.IO.File.Move(tmp, path, overwrite: true);
    }
}
