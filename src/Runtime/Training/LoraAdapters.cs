using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Training;

// Dimension letters: R rank, I a linear layer's inputs, O its outputs.

/// <summary>
/// A LoRA adapter's hyper-parameters, as Hugging Face PEFT's LoraConfig names them: rank r, lora_alpha, lora_dropout
/// and the target linear layers. The update is scaled by alpha / r (PEFT's default; rsLoRA's alpha / sqrt(r) is not done).
/// </summary>
public sealed record LoraConfig(int Rank, double Alpha, double Dropout, IReadOnlyList<LinearKind> Targets)
{
    public double Scaling => Alpha / Rank;

    public override string ToString() =>
        $"LoraConfig {{ r = {Rank}, alpha = {Alpha.ToString(CultureInfo.InvariantCulture)}, dropout = {Dropout.ToString(CultureInfo.InvariantCulture)}, targets = {string.Join(",", Targets.Select(ShortName))} }}";

    /// <summary>The short names of the --targets option, in <see cref="LinearKind"/> order: q, k, v, o, gate, up, down.</summary>
    public static string ShortName(LinearKind k) => k.ToString().ToLowerInvariant();

    /// <summary>PEFT's target_modules entry: the module's own name (q_proj, ..., down_proj).</summary>
    public static string ModuleName(LinearKind k) => k.HfName()[(k.HfName().IndexOf('.') + 1)..];

    /// <summary>Targets from short names (q,k,v,o,gate,up,down) or module names (q_proj, ...), in <see cref="LinearKind"/> order.</summary>
    public static List<LinearKind> ParseTargets(IEnumerable<string> names, string what)
    {
        var set = new HashSet<LinearKind>();
        foreach (var raw in names)
        {
            string n = raw.Trim();
            var k = LinearKinds.All.Where(k => ShortName(k) == n || ModuleName(k) == n).Cast<LinearKind?>().FirstOrDefault()
                ?? throw new PrunerZeroException($"{what}: unknown target '{raw}' (known: {string.Join(", ", LinearKinds.All.Select(ShortName))}, or their module names q_proj, ...)");
            if (!set.Add(k)) throw new PrunerZeroException($"{what}: target '{raw}' is given twice");
        }
        if (set.Count == 0) throw new PrunerZeroException($"{what}: no target layers");
        return LinearKinds.All.Where(set.Contains).ToList();
    }

    public void Check()
    {
        if (Rank < 1) throw new PrunerZeroException($"--rank must be at least 1, got {Rank}");
        if (!(Alpha > 0 && double.IsFinite(Alpha))) throw new PrunerZeroException($"--alpha must be positive, got {Alpha}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new PrunerZeroException($"--dropout must be in [0, 1), got {Dropout}");
        if (Targets.Count == 0) throw new PrunerZeroException("--targets: no target layers");
    }

    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>adapter_config.json as PEFT writes it for a LoRA adapter on a causal LM (the fields PEFT 0.x reads).</summary>
    public JsonObject ToPeftJson(string baseModel) => new()
    {
        ["alpha_pattern"] = new JsonObject(),
        ["auto_mapping"] = null,
        ["base_model_name_or_path"] = baseModel,
        ["bias"] = "none",
        ["fan_in_fan_out"] = false,
        ["inference_mode"] = true,
        ["init_lora_weights"] = true,
        ["layers_pattern"] = null,
        ["layers_to_transform"] = null,
        ["lora_alpha"] = Alpha == Math.Floor(Alpha) ? (JsonNode)(long)Alpha : Alpha,
        ["lora_dropout"] = Dropout,
        ["modules_to_save"] = null,
        ["peft_type"] = "LORA",
        ["r"] = Rank,
        ["rank_pattern"] = new JsonObject(),
        ["revision"] = null,
        ["target_modules"] = new JsonArray(Targets.Select(k => (JsonNode)ModuleName(k)).ToArray()),
        ["task_type"] = "CAUSAL_LM",
        ["use_dora"] = false,
        ["use_rslora"] = false,
    };

    /// <summary>Reads adapter_config.json; refuses every setting that would change the math and is not implemented here.</summary>
    public static LoraConfig FromPeftJson(string path)
    {
        JsonObject j;
        try { j = JsonNode.Parse(PathSafety.ReadAllTextBounded(path, "adapter config", PathSafety.MaxJsonBytes)) as JsonObject ?? throw new PrunerZeroException($"{path}: not a JSON object"); }
        catch (JsonException e) { throw new PrunerZeroException($"{path}: not valid JSON ({e.Message})"); }
        string? Str(string key) => j[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        bool IsSet(string key) => j[key] switch
        {
            null => false,
            JsonObject o => o.Count > 0,
            JsonArray a => a.Count > 0,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            _ => true,
        };
        if (Str("peft_type") != "LORA") throw new PrunerZeroException($"{path}: peft_type is '{Str("peft_type")}', not LORA");
        if ((Str("bias") ?? "none") != "none") throw new PrunerZeroException($"{path}: bias '{Str("bias")}' is not supported (only \"none\")");
        foreach (var key in new[] { "fan_in_fan_out", "use_rslora", "use_dora", "rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save" })
            if (IsSet(key)) throw new PrunerZeroException($"{path}: '{key}' is set; this implementation applies plain LoRA (alpha / r on every target) only");
        if (j["r"] is not JsonValue rv || !rv.TryGetValue<int>(out int r)) throw new PrunerZeroException($"{path}: no integer 'r'");
        if (j["lora_alpha"] is not JsonValue av || !av.TryGetValue<double>(out double alpha)) throw new PrunerZeroException($"{path}: no number 'lora_alpha'");
        double dropout = j["lora_dropout"] is JsonValue dv && dv.TryGetValue<double>(out double d) ? d : 0;
        if (j["target_modules"] is not JsonArray targets)
            throw new PrunerZeroException($"{path}: target_modules must be a list of module names (a regular expression is not supported)");
        var config = new LoraConfig(r, alpha, dropout, ParseTargets(targets.Select(t => t?.GetValue<string>() ?? ""), path));
        config.Check();
        return config;
    }
}

/// <summary>
/// LoRA adapters on a <see cref="LlamaModel"/>'s block linears, computed as PEFT's lora.Linear does:
/// y = x·Wᵀ + (alpha / r) · B(A(dropout(x))), A (R, I) and B (O, R) in float32, the base weight W untouched.
/// A starts kaiming-uniform with a = √5 (PEFT's init_lora_weights=True: U(−1/√I, 1/√I)), B at zero, so a fresh
/// adapter changes nothing. Attached to the blocks through <see cref="LlamaBlock.Adapter"/>.
/// Dropout draws from <see cref="DropoutGenerator"/> while one is set (training) and is off otherwise.
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    public LoraConfig Config { get; }
    public int Layers { get; }
    readonly Dictionary<(int Layer, LinearKind Kind), (Tensor A, Tensor B)> _ab = new();
    readonly Dictionary<(int Layer, LinearKind Kind), Tensor> _masks = new();

    /// <summary>The safetensors metadata entry that records an adapter trained with its update masked by the base's nonzeros (PEFT ignores it).</summary>
    public const string UpdateMaskKey = "pz_update_mask", UpdateMaskValue = "base_nonzero";

    /// <summary>True when the update is masked: y = x·Wᵀ + s·((B·A) ⊙ (W ≠ 0))·x on every target whose W has zeros (see <see cref="MaskUpdate"/>).</summary>
    public bool UpdateMasked { get; private set; }

    /// <summary>The generator dropout draws from; null: no dropout (evaluation).</summary>
    public Generator? DropoutGenerator { get; set; }

    LoraAdapters(LoraConfig config, int layers) { Config = config; Layers = layers; }

    /// <summary>PEFT's state-dict key of a layer's A or B ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight").</summary>
    public static string Key(int layer, LinearKind k, char which) => $"base_model.model.model.layers.{layer}.{k.HfName()}.lora_{which}.weight";

    /// <summary>The A (R, I) and B (O, R) of a layer's target.</summary>
    public (Tensor A, Tensor B) this[int layer, LinearKind k] => _ab[(layer, k)];

    /// <summary>Every adapter tensor with its PEFT key, layer by layer, targets in <see cref="LinearKind"/> order, A before B.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> Named()
    {
        for (int i = 0; i < Layers; i++)
            foreach (var k in Config.Targets)
            {
                var (a, b) = _ab[(i, k)];
                yield return (Key(i, k, 'A'), a);
                yield return (Key(i, k, 'B'), b);
            }
    }

    /// <summary>Fresh adapters for the model (A from a generator seeded by <paramref name="seed"/>, B zero), autograd leaves.</summary>
    public static LoraAdapters Create(LlamaModel model, LoraConfig config, int seed)
    {
        config.Check();
        var l = new LoraAdapters(config, model.Blocks.Count);
        using var gen = new Generator(StableSeed.Of(seed, 0x10A) & 0x7FFF_FFFF_FFFF_FFFFUL);
        using var _ = no_grad();
        for (int i = 0; i < l.Layers; i++)
            foreach (var k in config.Targets)
            {
                using var scope = NewDisposeScope();
                long o = model.Blocks[i][k].shape[0], n = model.Blocks[i][k].shape[1];
                // kaiming_uniform_(a=√5): gain √(2 / (1 + 5)), bound gain·√(3 / fan_in) = 1 / √fan_in.
                double bound = 1 / Math.Sqrt(n);
                var a = rand([config.Rank, n], ScalarType.Float32, generator: gen).TimesInPlace(2 * bound).Minus(bound);
                var b = zeros([o, config.Rank], ScalarType.Float32);
                l._ab[(i, k)] = (a.requires_grad_(true).DetachFromDisposeScope(), b.requires_grad_(true).DetachFromDisposeScope());
            }
        return l;
    }

    /// <summary>
    /// Reads a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) for this model: every key the config
    /// implies must be there with the shape the model's layers need, and nothing else (an unknown tensor would be math
    /// left out). Stored F16 / BF16 tensors are converted to float32.
    /// </summary>
    public static LoraAdapters Load(string dir, LlamaModel model, bool trainable = false)
    {
        if (!Directory.Exists(dir)) throw new PrunerZeroException($"adapter folder not found: {dir}");
        string cfgPath = Path.Combine(dir, LoraConfig.ConfigFile), weights = Path.Combine(dir, LoraConfig.WeightsFile);
        if (!File.Exists(cfgPath)) throw new PrunerZeroException($"{dir}: no {LoraConfig.ConfigFile} (not a PEFT adapter folder)");
        if (!File.Exists(weights)) throw new PrunerZeroException($"{dir}: no {LoraConfig.WeightsFile} (PEFT's adapter_model.bin is not read: convert it to safetensors)");
        var config = LoraConfig.FromPeftJson(cfgPath);
        var (entries, start, meta) = SafeTensors.ReadHeaderAndMetadata(weights);
        string? mask = meta.GetValueOrDefault(UpdateMaskKey);
        if (mask is not (null or UpdateMaskValue)) throw new PrunerZeroException($"{weights}: metadata {UpdateMaskKey} is '{mask}'; the one known value is '{UpdateMaskValue}'");
        var byName = entries.ToDictionary(e => e.Name);
        var l = new LoraAdapters(config, model.Blocks.Count);
        try
        {
            for (int i = 0; i < l.Layers; i++)
                foreach (var k in config.Targets)
                {
                    long o = model.Blocks[i][k].shape[0], n = model.Blocks[i][k].shape[1];
                    l._ab[(i, k)] = (Read(weights, byName, Key(i, k, 'A'), [config.Rank, n], start, trainable),
                                     Read(weights, byName, Key(i, k, 'B'), [o, config.Rank], start, trainable));
                }
            var extra = byName.Keys.Where(key => !l.Named().Any(nt => nt.Name == key)).ToList();
            if (extra.Count > 0)
                throw new PrunerZeroException($"{weights}: tensors this model or adapter_config.json has no place for: {string.Join(", ", extra.Take(4))}{(extra.Count > 4 ? ", ..." : "")}");
            // The metadata says how the adapter was trained; the forward stays PEFT's (W·x + s·B·A·x), so `eval --adapter`
            // equals any PEFT implementation. The masked model it was trained as is the --merge masked checkpoint.
        }
        catch
        {
            l.Dispose();
            throw;
        }
        return l;
    }

    static Tensor Read(string file, Dictionary<string, SafeTensorEntry> byName, string key, long[] shape, long start, bool trainable)
    {
        if (!byName.TryGetValue(key, out var e)) throw new PrunerZeroException($"{file}: tensor '{key}' is missing");
        if (!e.Shape.SequenceEqual(shape))
            throw new PrunerZeroException($"{file}: tensor '{key}' has shape [{string.Join(", ", e.Shape)}], this model and r need [{string.Join(", ", shape)}]");
        if (e.DType is not ("F32" or "F16" or "BF16")) throw new PrunerZeroException($"{file}: tensor '{key}' has dtype {e.DType}; adapters must be F32, F16 or BF16");
        using var scope = NewDisposeScope();
        var t = SafeTensors.Read(e, start).to(ScalarType.Float32);
        return (trainable ? t.requires_grad_(true) : t).DetachFromDisposeScope();
    }

    /// <summary>Writes the PEFT layout: adapter_config.json and adapter_model.safetensors (float32) into <paramref name="dir"/>.</summary>
    public void Save(string dir, string baseModel)
    {
        Directory.CreateDirectory(dir);
        using (var scope = NewDisposeScope())
        {
            var meta = new Dictionary<string, string> { ["format"] = "pt" };
            if (UpdateMasked) meta[UpdateMaskKey] = UpdateMaskValue;
            SafeTensors.Write(Path.Combine(dir, LoraConfig.WeightsFile), Named().Select(nt => (nt.Name, nt.Tensor.detach())).ToList(), meta);
        }
        File.WriteAllText(Path.Combine(dir, LoraConfig.ConfigFile), Config.ToPeftJson(baseModel).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// From now on the update of every target whose base weight W has zeros is masked by M = (W ≠ 0) (a bool tensor on W's
    /// device, computed once here): y = x·Wᵀ + s·((B·A) ⊙ M)·dropout(x), which is x·((W + s·B·A) ⊙ M)ᵀ without dropout,
    /// the forward of <see cref="MergeMasked"/>'s checkpoint. A target without zeros has M all ones and is left as it is.
    /// Returns the number of masked targets.
    /// </summary>
    public int MaskUpdate(LlamaModel model)
    {
        if (model.Blocks.Count != Layers) throw new PrunerZeroException($"the adapter has {Layers} layers, the model {model.Blocks.Count}");
        UpdateMasked = true;
        using var _ = no_grad();
        for (int i = 0; i < Layers; i++)
            foreach (var k in Config.Targets)
            {
                using var scope = NewDisposeScope();
                var w = model.Blocks[i][k];
                var nonzero = w.EqualTo(0).logical_not();
                if (nonzero.all().item<bool>()) continue;
                if (_masks.Remove((i, k), out var old)) old.Dispose();
                _masks[(i, k)] = nonzero.DetachFromDisposeScope();
            }
        return _masks.Count;
    }

    /// <summary>Bytes the update masks hold (one bool per weight of a masked target).</summary>
    public long MaskBytes => _masks.Values.Sum(m => m.NumberOfElements);

    /// <summary>Whether a model's target linears have any zero (then <see cref="MaskUpdate"/> masks them).</summary>
    public static bool HasZeros(LlamaModel model, LoraConfig config)
    {
        using var scope = NewDisposeScope();
        return model.Blocks.Any(b => config.Targets.Any(k => b[k].EqualTo(0).any().item<bool>()));
    }

    /// <summary>Puts the adapters on the model's blocks (its forward applies them from now on).</summary>
    public void Attach(LlamaModel model)
    {
        if (model.Blocks.Count != Layers) throw new PrunerZeroException($"the adapter has {Layers} layers, the model {model.Blocks.Count}");
        for (int i = 0; i < Layers; i++) model.Blocks[i].Adapter = new BlockLora(this, i);
    }

    /// <summary>Takes the adapters off the model's blocks.</summary>
    public static void Detach(LlamaModel model)
    {
        foreach (var b in model.Blocks) b.Adapter = null;
    }

    /// <summary>x·Wᵀ's adapted value y + (alpha / r)·B(A(dropout(x))) for layer <paramref name="layer"/>'s <paramref name="kind"/>; y when it is no target.</summary>
    public Tensor Apply(int layer, LinearKind kind, Tensor x, Tensor y)
    {
        if (!_ab.TryGetValue((layer, kind), out var ab)) return y;
        var input = x;
        if (DropoutGenerator is { } gen && Config.Dropout > 0)
        {
            // torch.nn.Dropout: keep with probability 1 − p, scale the kept by 1 / (1 − p). Each target draws its own mask.
            using var p = Config.Dropout.ToScalar();
            var keep = rand(x.shape, ScalarType.Float32, x.device, generator: gen).ge(p);
            input = x.mul(keep).DividedBy(1 - Config.Dropout);
        }
        var delta = _masks.TryGetValue((layer, kind), out var mask)
            ? nn.functional.linear(input, ab.B.matmul(ab.A).mul(mask))                 // (O, I) materialised, masked
            : nn.functional.linear(nn.functional.linear(input, ab.A), ab.B);           // (.., R) then (.., O)
        return y.Plus(delta.Times(Config.Scaling));
    }

    /// <summary>
    /// W' = (W + (alpha / r)·B·A) ⊙ mask, mask = W ≠ 0, written into the model's weights in their dtype: every
    /// pruned weight stays exactly zero. Computed in float32. Returns each target's zero count before and after.
    /// </summary>
    public List<(int Layer, LinearKind Kind, long Numel, long ZerosBefore, long ZerosAfter)> MergeMasked(LlamaModel model)
    {
        var counts = new List<(int, LinearKind, long, long, long)>();
        using var _ = no_grad();
        for (int i = 0; i < Layers; i++)
            foreach (var k in Config.Targets)
            {
                using var scope = NewDisposeScope();
                var w = model.Blocks[i][k];
                long before = w.EqualTo(0).sum().item<long>();
                var merged = MergedMasked(w, this[i, k].A, this[i, k].B, Config.Scaling);
                w.copy_(merged);
                counts.Add((i, k, w.NumberOfElements, before, w.EqualTo(0).sum().item<long>()));
            }
        return counts;
    }

    /// <summary>(W + s·B·A) ⊙ (W ≠ 0) in float32, for one weight W (O, I) of any dtype.</summary>
    public static Tensor MergedMasked(Tensor w, Tensor a, Tensor b, double scaling)
    {
        var wf = LlamaModel.AsFloat32(w);
        var sum = wf.Plus(b.detach().matmul(a.detach()).Times(scaling));
        return where(w.EqualTo(0), zeros_like(sum), sum);
    }

    public void Dispose()
    {
        foreach (var (a, b) in _ab.Values) { a.Dispose(); b.Dispose(); }
        _ab.Clear();
        foreach (var m in _masks.Values) m.Dispose();
        _masks.Clear();
    }

    /// <summary>The hook one block's linears call (<see cref="LlamaModel.Linear"/>).</summary>
    sealed class BlockLora(LoraAdapters owner, int layer) : ILinearAdapter
    {
        public Tensor Apply(LinearKind kind, Tensor x, Tensor y) => owner.Apply(layer, kind, x, y);
    }
}
