using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>
/// Hugging Face checkpoint folders: config.json, model.safetensors or a sharded
/// model.safetensors.index.json, tokenizer files. Loading checks every name and shape against the config.
/// </summary>
public static class Checkpoint
{
    public static void RequireDirectory(string dir)
    {
        if (File.Exists(dir)) throw new PrunerZeroException($"model directory {dir} is a file, not a checkpoint folder");
        if (!Directory.Exists(dir)) throw new PrunerZeroException($"model directory not found: {dir}");
    }

    public static string RequireDirectoryAnd(string dir)
    {
        RequireDirectory(dir);
        return dir;
    }

    /// <summary>Bytes of a checkpoint's tensors as stored (and as held in memory once loaded).</summary>
    public static long TensorBytes(string dir) => Entries(dir).Sum(e => e.Entry.End - e.Entry.Begin);

    /// <summary>The safetensors entries of a checkpoint folder, from the single file or the shard index.</summary>
    public static List<(SafeTensorEntry Entry, long DataStart)> Entries(string dir)
    {
        RequireDirectory(dir);
        string single = Path.Combine(dir, "model.safetensors");
        string index = Path.Combine(dir, "model.safetensors.index.json");
        var files = new List<string>();
        if (File.Exists(single)) files.Add(single);
        else if (File.Exists(index))
        {
            files.AddRange(ShardFiles(dir, index));
        }
        else
        {
            string hint = Directory.EnumerateFiles(dir, "*.bin").Any() ? " (PyTorch .bin checkpoints are not read: convert to safetensors)" : "";
            throw new PrunerZeroException($"{dir}: no model.safetensors or model.safetensors.index.json{hint}");
        }
        var all = new List<(SafeTensorEntry, long)>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            var (entries, start) = SafeTensors.ReadHeader(f);
            foreach (var e in entries)
                if (!seen.TryAdd(e.Name, f))
                    throw new PrunerZeroException($"{dir}: tensor '{e.Name}' is stored twice ({Path.GetFileName(seen[e.Name])} and {Path.GetFileName(f)})");
            all.AddRange(entries.Select(e => (e, start)));
        }
        return all;
    }

    /// <summary>
    /// The shard files an index names. Every name is untrusted: it must be a plain file name in the checkpoint
    /// folder (no directory part, no "..", not absolute), so an index can never make us read outside the folder.
    /// </summary>
    static List<string> ShardFiles(string dir, string index)
    {
        JsonObject? map;
        try { map = JsonNode.Parse(PathSafety.ReadAllTextBounded(index, "shard index", PathSafety.MaxJsonBytes))?["weight_map"] as JsonObject; }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            throw new PrunerZeroException($"{index}: not valid JSON ({e.Message})");
        }
        if (map is null) throw new PrunerZeroException($"{index}: no weight_map");
        var files = new List<string>();
        try
        {
            foreach (var (tensor, value) in map)
            {
                if (value is not JsonValue v || !v.TryGetValue<string>(out var name))
                    throw new PrunerZeroException($"{index}: weight_map entry '{tensor}' is not a file name");
                if (name.Length == 0 || Path.IsPathRooted(name) || name.Contains('/') || name.Contains('\\') || name is "." or ".."
                    || Path.GetFileName(name) != name)
                    throw new PrunerZeroException($"{index}: weight_map names '{name}' for '{tensor}'; shards must be plain file names inside the checkpoint folder");
                string f = Path.Combine(dir, name);
                if (!File.Exists(f)) throw new PrunerZeroException($"{index}: shard '{name}' (for '{tensor}') not found in {dir}");
                if (!files.Contains(f)) files.Add(f);
            }
        }
        catch (ArgumentException e) { throw new PrunerZeroException($"{index}: malformed weight_map ({e.Message})"); }
        if (files.Count == 0) throw new PrunerZeroException($"{index}: weight_map is empty");
        return files;
    }

    /// <summary>
    /// Loads config and weights and checks every shape against the config. The weights are read tensor by
    /// tensor from the files straight into their tensors (no second copy of the model is ever held):
    /// converted to float32 by default (training and the small-model tools), or kept in the checkpoint's
    /// dtype with <paramref name="keepDtype"/> (pruning and evaluation: a bf16 model stays bf16 in memory and
    /// each block is computed in float32 only while it is worked on). <paramref name="device"/> puts them
    /// on another device (cuda), tensor by tensor.
    /// </summary>
    public static LlamaModel Load(string dir, IProgress<string>? progress = null, bool keepDtype = false, Device? device = null)
    {
        RequireDirectory(dir);
        var cfg = LlamaConfig.Load(Path.Combine(dir, "config.json"));
        var entries = Entries(dir).ToDictionary(e => e.Entry.Name);
        long c = cfg.HiddenSize, f = cfg.IntermediateSize, hd = cfg.NumHeads * cfg.HeadDim, kvd = cfg.NumKvHeads * cfg.HeadDim, v = cfg.VocabSize;

        var used = new HashSet<string>();
        var loaded = new List<Tensor>();   // disposed again when the checkpoint turns out to be bad half-way
        Tensor Get(string name, params long[] shape)
        {
            var t = Read(name, shape);
            loaded.Add(t);
            return t;
        }
        Tensor Read(string name, long[] shape)
        {
            if (!entries.TryGetValue(name, out var e)) throw new PrunerZeroException($"{dir}: tensor '{name}' is missing");
            if (!e.Entry.Shape.SequenceEqual(shape))
                throw new PrunerZeroException($"{dir}: tensor '{name}' has shape [{string.Join(", ", e.Entry.Shape)}] but config.json implies [{string.Join(", ", shape)}]");
            if (e.Entry.DType is not ("F32" or "F16" or "BF16"))
                throw new PrunerZeroException($"{dir}: tensor '{name}' has dtype {e.Entry.DType}; weights must be F32, F16 or BF16");
            used.Add(name);
            using var scope = NewDisposeScope();   // the read tensor and any conversion step; the result leaves it
            var raw = SafeTensors.Read(e.Entry, e.DataStart);
            if ((keepDtype || raw.dtype == ScalarType.Float32) && (device is null || device.type == DeviceType.CPU))
                return raw.DetachFromDisposeScope();
            return raw.to(keepDtype ? raw.dtype : ScalarType.Float32, device ?? CPU).contiguous().DetachFromDisposeScope();
        }

        try
        {
            var embed = Get("model.embed_tokens.weight", v, c);
            var blocks = new List<LlamaBlock>();
            for (int i = 0; i < cfg.NumLayers; i++)
            {
                progress?.Report($"loading block {i + 1}/{cfg.NumLayers}");
                string p = $"model.layers.{i}.";
                long[] outDim = [hd, kvd, kvd, c, f, f, c];   // by LinearKind
                blocks.Add(new LlamaBlock
                {
                    Biases = [.. LinearKinds.All.Select(k => cfg.HasBias(k) ? Get(p + k.HfName() + ".bias", outDim[(int)k]) : null)],
                    QNorm = cfg.QkNorm ? Get(p + "self_attn.q_norm.weight", cfg.HeadDim) : null,
                    KNorm = cfg.QkNorm ? Get(p + "self_attn.k_norm.weight", cfg.HeadDim) : null,
                    Window = cfg.WindowOf(i),
                    InputNorm = Get(p + "input_layernorm.weight", c),
                    Q = Get(p + "self_attn.q_proj.weight", hd, c),
                    K = Get(p + "self_attn.k_proj.weight", kvd, c),
                    V = Get(p + "self_attn.v_proj.weight", kvd, c),
                    O = Get(p + "self_attn.o_proj.weight", c, hd),
                    PostNorm = Get(p + "post_attention_layernorm.weight", c),
                    Gate = Get(p + "mlp.gate_proj.weight", f, c),
                    Up = Get(p + "mlp.up_proj.weight", f, c),
                    Down = Get(p + "mlp.down_proj.weight", c, f),
                });
            }
            var norm = Get("model.norm.weight", c);
            Tensor? head = null;
            if (!cfg.TieWordEmbeddings) head = Get("lm_head.weight", v, c);
            else if (entries.ContainsKey("lm_head.weight")) used.Add("lm_head.weight"); // HF ties it to the embedding anyway

            // Anything else would be ignored math (biases, extra layers): refuse. Rotary caches are derived data.
            var extra = entries.Keys.Where(k => !used.Contains(k) && !k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)).ToList();
            if (extra.Count > 0)
                throw new PrunerZeroException($"{dir}: unexpected tensors that the {cfg.Architecture} forward would ignore: {string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? ", ..." : "")}");
            return new LlamaModel(cfg, embed, blocks, norm, head);
        }
        catch
        {
            foreach (var t in loaded) t.Dispose();
            throw;
        }
    }

    /// <summary>Puts the dense weights of every prunable linear layer back from the checkpoint files.</summary>
    public static void RestoreLinears(LlamaModel model, string dir)
    {
        var entries = Entries(dir).ToDictionary(e => e.Entry.Name);
        using var _ = no_grad();
        for (int i = 0; i < model.Blocks.Count; i++)
            foreach (var k in LinearKinds.All)
            {
                var (e, start) = entries[$"model.layers.{i}.{k.HfName()}.weight"];
                using var raw = SafeTensors.Read(e, start);
                model.Blocks[i][k].copy_(raw);   // converts dtype and device when they differ; one tensor at a time
            }
    }

    /// <summary>
    /// Saves the model in Hugging Face layout in the given dtype: config.json, model.safetensors (or shards
    /// of at most 5 GiB with an index, as transformers writes big models), and the tokenizer and generation
    /// files copied from <paramref name="sourceDir"/>. Streams: one tensor at a time is converted and written.
    /// </summary>
    public static void Save(LlamaModel model, string outDir, string? sourceDir, ScalarType dtype, IDictionary<string, string>? metadata = null)
    {
        // The weights of sourceDir may still be read (memory-mapped, restored between metrics): never write over them.
        if (sourceDir != null) PathSafety.NotTheInput(outDir, sourceDir, "output folder");
        Directory.CreateDirectory(outDir);
        var cfgJson = model.Config.ToJson();
        if (sourceDir != null && File.Exists(Path.Combine(sourceDir, "config.json")))
        {
            // Keep every key of the source config (HF reads more than we model), with dtype updated.
            cfgJson = JsonNode.Parse(File.ReadAllText(Path.Combine(sourceDir, "config.json"))) as JsonObject ?? cfgJson;
        }
        cfgJson["torch_dtype"] = dtype switch
        {
            ScalarType.Float16 => "float16",
            ScalarType.BFloat16 => "bfloat16",
            _ => "float32",
        };
        File.WriteAllText(Path.Combine(outDir, "config.json"), cfgJson.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        var byName = model.NamedTensors().ToDictionary(t => t.Name, t => t.Tensor);
        var specs = model.NamedTensors().Select(t => new TensorSpec(t.Name, SafeTensors.DTypeName(dtype), t.Tensor.shape)).ToList();
        SafeTensors.WriteCheckpoint(outDir, specs, s => byName[s.Name].detach().to(dtype).contiguous(), metadata);
        if (sourceDir != null && Path.GetFullPath(sourceDir) != Path.GetFullPath(outDir))
        {
            foreach (var name in TextTokenizer.Files.Append("generation_config.json"))
            {
                string src = Path.Combine(sourceDir, name);
                if (File.Exists(src)) File.Copy(src, Path.Combine(outDir, name), overwrite: true);
            }
        }
    }
}
