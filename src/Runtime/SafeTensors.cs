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
        var (entries, dataStart, _) = ReadHeaderAndMetadata(path);
        return (entries, dataStart);
    }

    /// <summary>The __metadata__ key of the SHA-256 (lowercase hex) over every byte after the header, written by a checksumming <see cref="SafeTensorsWriter"/>.</summary>
    public const string ChecksumKey = "data_sha256";

    /// <summary>
    /// Null when the file's data section (every byte after the header, to the end of the file) hashes to the
    /// <see cref="ChecksumKey"/> stored in its header; otherwise why not, in words (truncated, garbled header, no
    /// checksum, mismatch). Reads the whole file.
    /// </summary>
    public static string? ChecksumProblem(string path)
    {
        List<SafeTensorEntry> entries;
        long dataStart;
        Dictionary<string, string> meta;
        try { (entries, dataStart, meta) = ReadHeaderAndMetadata(path); }
        catch (PrunerZeroException e) { return e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message[path.Length..].TrimStart(':', ' ') : e.Message; }
        long needed = entries.Count == 0 ? 0 : entries.Max(e => e.End);
        long have = new FileInfo(path).Length - dataStart;
        if (have != needed) return $"the data section is {have} bytes, the header lays out {needed}";
        if (!meta.TryGetValue(ChecksumKey, out var stored)) return $"its header has no {ChecksumKey} checksum";
        string actual = DataSha256(path, dataStart);
        return actual == stored ? null : $"{ChecksumKey} mismatch: the header says {stored[..Math.Min(16, stored.Length)]}…, the data hashes to {actual[..16]}…";
    }

    /// <summary>SHA-256 (lowercase hex) of every byte of <paramref name="path"/> from <paramref name="dataStart"/> to its end.</summary>
    public static string DataSha256(string path, long dataStart)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return DataSha256(fs, dataStart);
    }

    internal static string DataSha256(Stream fs, long dataStart)
    {
        using var h = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        fs.Position = dataStart;
        var buffer = new byte[1 << 20];
        int n;
        while ((n = fs.Read(buffer, 0, buffer.Length)) > 0) h.AppendData(buffer, 0, n);
        return Convert.ToHexString(h.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The header's entries, data offset and __metadata__ (string values only).</summary>
    public static (List<SafeTensorEntry> Entries, long DataStart, Dictionary<string, string> Metadata) ReadHeaderAndMetadata(string path)
    {
        if (!System.IO.File.Exists(path)) throw new PrunerZeroException($"safetensors file not found: {path}");
        PathSafety.RequireRegularFile(path, "weights file");
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
        var metadata = new Dictionary<string, string>();
        if (header["__metadata__"] is JsonObject m)
            foreach (var (k, v) in m)
                if (v is JsonValue jv && jv.TryGetValue<string>(out var text)) metadata[k] = text;
        return (entries, dataStart, metadata);
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

    /// <summary>Element size in bytes of a safetensors dtype name.</summary>
    public static int ElementSize(string dtype) => DTypes[dtype].Size;

    /// <summary>Writes tensors (any device; converted to nothing, so already in the wanted dtype) as one safetensors file.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IDictionary<string, string>? metadata = null)
    {
        using var w = new SafeTensorsWriter(path, tensors.Select(t => new TensorSpec(t.Name, DTypeName(t.Tensor.dtype), t.Tensor.shape)).ToList(), metadata);
        foreach (var (name, t) in tensors) w.Write(name, t);
        w.Complete();
    }

    /// <summary>
    /// Writes a checkpoint tensor by tensor: one file model.safetensors, or shards of at most
    /// <paramref name="maxShardBytes"/> (model-0000i-of-0000n.safetensors plus model.safetensors.index.json,
    /// as transformers writes them). <paramref name="produce"/> makes each tensor in its spec's dtype when
    /// asked, so only one tensor is in memory at a time; the writer disposes nothing it is given.
    /// </summary>
    public static void WriteCheckpoint(string dir, IReadOnlyList<TensorSpec> specs, Func<TensorSpec, Tensor> produce,
        IDictionary<string, string>? metadata = null, long maxShardBytes = 5L << 30)
    {
        var shards = new List<List<TensorSpec>> { new() };
        long size = 0;
        foreach (var s in specs)
        {
            if (shards[^1].Count > 0 && size + s.Bytes > maxShardBytes) { shards.Add([]); size = 0; }
            shards[^1].Add(s);
            size += s.Bytes;
        }
        var names = shards.Count == 1 ? ["model.safetensors"]
            : shards.Select((_, i) => $"model-{i + 1:00000}-of-{shards.Count:00000}.safetensors").ToArray();
        // All shards' bytes before the first is written: a checkpoint does not fail at its third shard.
        DiskSpace.Require(Path.Combine(dir, names[0]), specs.Sum(s => s.Bytes));
        for (int i = 0; i < shards.Count; i++)
        {
            using var w = new SafeTensorsWriter(Path.Combine(dir, names[i]), shards[i], metadata);
            foreach (var s in shards[i])
            {
                using var scope = NewDisposeScope();
                w.Write(s.Name, produce(s));
            }
            w.Complete();
        }
        if (shards.Count > 1)
        {
            var map = new JsonObject();
            for (int i = 0; i < shards.Count; i++) foreach (var s in shards[i]) map[s.Name] = names[i];
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = specs.Sum(s => s.Bytes) }, ["weight_map"] = map };
            System.IO.File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        // An older layout of the other kind (one file vs shards) must not survive next to the new one.
        var keep = new HashSet<string>(names);
        if (shards.Count > 1) keep.Add("model.safetensors.index.json");
        foreach (var f in Directory.EnumerateFiles(dir, "model*.safetensors*"))
            if (!keep.Contains(Path.GetFileName(f))) System.IO.File.Delete(f);
    }
}

/// <summary>A tensor to be written: name, safetensors dtype name, shape.</summary>
public sealed record TensorSpec(string Name, string DType, long[] Shape)
{
    public long Bytes => Shape.Aggregate(1L, (a, b) => a * b) * SafeTensors.ElementSize(DType);
}

/// <summary>
/// A safetensors file written without holding its tensors: the header is laid out from the specs first
/// (data 8-byte aligned, as the reference writer does), then each tensor is written at its offset, in any
/// order; <see cref="Complete"/> checks that every tensor was written and moves the writer's own .tmp file into place.
/// </summary>
public sealed class SafeTensorsWriter : IDisposable
{
    readonly string _path, _tmp;
    readonly FileStream _fs;
    readonly Dictionary<string, (TensorSpec Spec, long Offset)> _layout = new();
    readonly HashSet<string> _written = new();
    readonly long _dataStart;
    readonly long _checksumAt = -1;
    bool _done;
    static int s_writers;
    static readonly string ChecksumPlaceholder = new('0', 64);

    /// <summary>
    /// With <paramref name="checksum"/>, <see cref="Complete"/> hashes every byte of the data section (SHA-256) and
    /// stores it in the header's __metadata__ as <see cref="SafeTensors.ChecksumKey"/> before the file is moved into
    /// place, so the checksum is written with the content, atomically (see <see cref="SafeTensors.ChecksumProblem"/>).
    /// </summary>
    public SafeTensorsWriter(string path, IReadOnlyList<TensorSpec> specs, IDictionary<string, string>? metadata = null, bool checksum = false)
    {
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        if (checksum) meta[SafeTensors.ChecksumKey] = ChecksumPlaceholder;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var s in specs)
        {
            header[s.Name] = new JsonObject
            {
                ["dtype"] = s.DType,
                ["shape"] = new JsonArray(s.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + s.Bytes),
            };
            _layout[s.Name] = (s, offset);
            offset += s.Bytes;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        if (checksum)
        {
            var marker = Encoding.UTF8.GetBytes($"\"{SafeTensors.ChecksumKey}\":\"{ChecksumPlaceholder}\"");
            _checksumAt = 8 + json.AsSpan().IndexOf(marker) + marker.Length - 1 - ChecksumPlaceholder.Length;
        }
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);
        _path = path;
        // A temporary name of its own: two processes filling the same cache entry (two searches, or cluster workers
        // on one machine) each write their own file, and the last rename wins (same content, atomic replace).
        _tmp = $"{path}.{Environment.ProcessId}.{Interlocked.Increment(ref s_writers)}.tmp";
        DiskSpace.Require(path, 8 + padded + offset);
        _fs = new FileStream(_tmp, FileMode.Create, checksum ? FileAccess.ReadWrite : FileAccess.Write, FileShare.None, 1 << 20);
        _fs.Write(BitConverter.GetBytes((ulong)padded));
        _fs.Write(headerBytes);
        _dataStart = 8 + padded;
        _fs.SetLength(_dataStart + offset);
    }

    /// <summary>Writes one tensor (its dtype and shape must match the spec); copies it to a contiguous CPU tensor first when it is not one.</summary>
    public void Write(string name, Tensor t)
    {
        if (!_layout.TryGetValue(name, out var l)) throw new InvalidOperationException($"{_path}: tensor '{name}' is not in the header");
        if (SafeTensors.DTypeName(t.dtype) != l.Spec.DType || !t.shape.SequenceEqual(l.Spec.Shape))
            throw new InvalidOperationException($"{_path}: tensor '{name}' is {t.dtype} [{string.Join(", ", t.shape)}], the header says {l.Spec.DType} [{string.Join(", ", l.Spec.Shape)}]");
        if (!_written.Add(name)) throw new InvalidOperationException($"{_path}: tensor '{name}' written twice");
        _fs.Position = _dataStart + l.Offset;
        if (t.device_type == DeviceType.CPU && t.is_contiguous()) t.WriteBytesToStream(_fs, 1 << 20);
        else
        {
            using var c = t.cpu().contiguous();
            c.WriteBytesToStream(_fs, 1 << 20);
        }
    }

    public void Complete()
    {
        var missing = _layout.Keys.Where(k => !_written.Contains(k)).ToList();
        if (missing.Count > 0) throw new InvalidOperationException($"{_path}: tensors not written: {string.Join(", ", missing.Take(5))}");
        if (_checksumAt >= 0)
        {
            _fs.Flush();
            var sha = Encoding.ASCII.GetBytes(SafeTensors.DataSha256(_fs, _dataStart));
            _fs.Position = _checksumAt;
            _fs.Write(sha);
        }
        _fs.Flush(flushToDisk: true);
        _fs.Dispose();
        System.IO.File.Move(_tmp, _path, overwrite: true);
        _done = true;
    }

    public void Dispose()
    {
        _fs.Dispose();
        if (!_done && System.IO.File.Exists(_tmp)) System.IO.File.Delete(_tmp);
    }
}
