using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

// Dimension letters: T tokens, C hidden, F intermediate, H heads, KV key/value heads, D head dim, V vocab.

/// <summary>The seven prunable linear layers of a block, in Hugging Face's names.</summary>
public enum LinearKind { Q, K, V, O, Gate, Up, Down }

public static class LinearKinds
{
    public static readonly LinearKind[] All = Enum.GetValues<LinearKind>();

    /// <summary>Whether the linear belongs to the attention half of a block (Q, K, V, O) or the MLP half.</summary>
    public static bool InAttention(this LinearKind k) => k is LinearKind.Q or LinearKind.K or LinearKind.V or LinearKind.O;

    public static string HfName(this LinearKind k) => k switch
    {
        LinearKind.Q => "self_attn.q_proj",
        LinearKind.K => "self_attn.k_proj",
        LinearKind.V => "self_attn.v_proj",
        LinearKind.O => "self_attn.o_proj",
        LinearKind.Gate => "mlp.gate_proj",
        LinearKind.Up => "mlp.up_proj",
        LinearKind.Down => "mlp.down_proj",
        _ => throw new ArgumentOutOfRangeException(nameof(k)),
    };
}

/// <summary>
/// Extra math on a block's linear layer (a LoRA adapter): given the layer's input x and its output y = x·Wᵀ, the
/// output to use instead. The one hook <see cref="LlamaModel.Linear"/> consults.
/// </summary>
public interface ILinearAdapter
{
    Tensor Apply(LinearKind kind, Tensor x, Tensor y);
}

/// <summary>
/// One decoder block's weights, [out, in] as nn.Linear stores them, in the dtype they are held in (the
/// checkpoint's for pruning and evaluation, float32 for training). Math always runs on a float32 view:
/// <see cref="Float32"/>.
/// </summary>
public sealed class LlamaBlock : IDisposable
{
    public required Tensor InputNorm;   // (C)
    public required Tensor Q;           // (H*D, C)
    public required Tensor K;           // (KV*D, C)
    public required Tensor V;           // (KV*D, C)
    public required Tensor O;           // (C, H*D)
    public required Tensor PostNorm;    // (C)
    public required Tensor Gate;        // (F, C)
    public required Tensor Up;          // (F, C)
    public required Tensor Down;        // (C, F)
    /// <summary>The bias of each linear, by <see cref="LinearKind"/>, null where the family has none (never pruned).</summary>
    public Tensor?[] Biases { get; init; } = new Tensor?[LinearKinds.All.Length];
    public Tensor? QNorm { get; init; }   // (D), Qwen3
    public Tensor? KNorm { get; init; }   // (D), Qwen3
    /// <summary>This layer's sliding attention window (null: full causal attention).</summary>
    public int? Window { get; init; }

    public Tensor? Bias(LinearKind k) => Biases[(int)k];
    /// <summary>Applied after each linear layer when set (LoRA); travels with the float32 working copies.</summary>
    public ILinearAdapter? Adapter { get; set; }

    public Tensor this[LinearKind k] => k switch
    {
        LinearKind.Q => Q, LinearKind.K => K, LinearKind.V => V, LinearKind.O => O,
        LinearKind.Gate => Gate, LinearKind.Up => Up, LinearKind.Down => Down,
        _ => throw new ArgumentOutOfRangeException(nameof(k)),
    };

    public IEnumerable<Tensor> All => [InputNorm, Q, K, V, O, PostNorm, Gate, Up, Down, .. Extras.Select(e => e.Tensor)];

    /// <summary>The tensors besides the norms and the linears' weights: biases, q_norm, k_norm, with the half they belong to.</summary>
    IEnumerable<(Tensor Tensor, bool Attention)> Extras =>
        LinearKinds.All.Where(k => Bias(k) is not null).Select(k => (Bias(k)!, k.InAttention()))
            .Concat(new[] { QNorm, KNorm }.OfType<Tensor>().Select(t => (t, true)));

    /// <summary>A block of the given tensors with this block's biases, norms and window mapped by f (given whether each belongs to the attention half).</summary>
    LlamaBlock With(Tensor inputNorm, Tensor q, Tensor k, Tensor v, Tensor o, Tensor postNorm, Tensor gate, Tensor up, Tensor down, Func<Tensor, bool, Tensor> f) => new()
    {
        InputNorm = inputNorm, Q = q, K = k, V = v, O = o, PostNorm = postNorm, Gate = gate, Up = up, Down = down,
        Biases = [.. LinearKinds.All.Select(kind => Bias(kind) is Tensor b ? f(b, kind.InAttention()) : null)],
        QNorm = QNorm is null ? null : f(QNorm, true),
        KNorm = KNorm is null ? null : f(KNorm, true),
        Window = Window,
        Adapter = Adapter,
    };

    public bool IsFloat32 => All.All(t => t.dtype == ScalarType.Float32);

    /// <summary>
    /// The block in float32 for one step of work: new handles in the current dispose scope, aliases of
    /// these tensors when they are float32 already (so in-place pruning reaches them), converted copies
    /// otherwise (bf16 and f16 convert to float32 exactly); <see cref="WriteBack"/> stores the latter.
    /// </summary>
    public LlamaBlock Float32() => With(
        LlamaModel.AsFloat32(InputNorm), LlamaModel.AsFloat32(Q), LlamaModel.AsFloat32(K),
        LlamaModel.AsFloat32(V), LlamaModel.AsFloat32(O), LlamaModel.AsFloat32(PostNorm),
        LlamaModel.AsFloat32(Gate), LlamaModel.AsFloat32(Up), LlamaModel.AsFloat32(Down), (t, _) => LlamaModel.AsFloat32(t));

    /// <summary>
    /// Like <see cref="Float32"/> for one half only: the attention half's tensors (InputNorm, Q, K, V, O) or the
    /// MLP half's (PostNorm, Gate, Up, Down) in float32, the other half's left as they are (not to be used).
    /// </summary>
    public LlamaBlock Float32Part(bool attention)
    {
        Tensor A(Tensor t, bool mine) => mine ? LlamaModel.AsFloat32(t) : t;
        return With(A(InputNorm, attention), A(Q, attention), A(K, attention), A(V, attention), A(O, attention),
            A(PostNorm, !attention), A(Gate, !attention), A(Up, !attention), A(Down, !attention), (t, att) => A(t, att == attention));
    }

    /// <summary>
    /// Fresh float32 copies (new leaf tensors, for gradients on the weights) of the attention half's tensors
    /// (InputNorm, Q, K, V, O); the MLP half's are left as they are (not to be used), so the G pass holds one
    /// half in float32, not the whole block.
    /// </summary>
    public LlamaBlock AttentionFloat32Copy()
    {
        return With(LlamaModel.Float32Copy(InputNorm), LlamaModel.Float32Copy(Q), LlamaModel.Float32Copy(K),
            LlamaModel.Float32Copy(V), LlamaModel.Float32Copy(O), PostNorm, Gate, Up, Down, (t, att) => att ? LlamaModel.Float32Copy(t) : t);
    }

    /// <summary>Writes the linears of a <see cref="Float32"/> working block back in this block's dtype (pruned zeros stay exact zeros).</summary>
    public void WriteBack(LlamaBlock working)
    {
        using var _ = no_grad();
        foreach (var k in LinearKinds.All)
            if (this[k].dtype != working[k].dtype || this[k].device != working[k].device) this[k].copy_(working[k]);
    }

    public void Dispose() { foreach (var t in All) t.Dispose(); }
}

/// <summary>
/// A LLaMA-family decoder (Hugging Face LlamaForCausalLM math): RMSNorm, rotate-half RoPE, grouped-query
/// attention, SwiGLU, tied or untied head; with the family's differences where the config names one (see
/// <see cref="LlamaConfig.Family"/>): rope_scaling (linear, llama3), biases on the linears (Qwen2 q/k/v,
/// attention_bias, mlp_bias), q_norm/k_norm (Qwen3), sliding-window attention (Mistral, Qwen with
/// use_sliding_window). Weights are held once, as plain tensors in the dtype they were
/// loaded in (the checkpoint's: a bf16 7B model takes 13.5 GB, not 27), so the pruning engine can score
/// and mask them in place and autograd can reach them; every block's math runs in float32, on a copy of
/// that block's weights made only while the block is worked on (<see cref="LlamaBlock.Float32"/>).
/// </summary>
public sealed class LlamaModel : IDisposable
{
    public LlamaConfig Config { get; }
    public Tensor Embed { get; }            // (V, C)
    public List<LlamaBlock> Blocks { get; }
    public Tensor Norm { get; }             // (C)
    public Tensor LmHead { get; }           // (V, C); the same tensor as Embed when tied

    public LlamaModel(LlamaConfig config, Tensor embed, List<LlamaBlock> blocks, Tensor norm, Tensor? lmHead)
    {
        Config = config;
        Embed = embed;
        Blocks = blocks;
        Norm = norm;
        LmHead = config.TieWordEmbeddings ? embed : lmHead ?? throw new PrunerZeroException("untied model without lm_head.weight");
    }

    /// <summary>The dtype the weights are held in.</summary>
    public ScalarType WeightDtype => Embed.dtype;

    /// <summary>The device the weights are on.</summary>
    public Device Device => Embed.device;

    /// <summary>A float32 handle of t in the current dispose scope: an alias when t is float32, else a converted copy.</summary>
    public static Tensor AsFloat32(Tensor t) => t.dtype == ScalarType.Float32 ? t.alias() : t.to(ScalarType.Float32);

    /// <summary>A float32 copy of t that shares no storage with it (a new autograd leaf), in the current dispose scope.</summary>
    public static Tensor Float32Copy(Tensor t) => t.dtype == ScalarType.Float32 ? t.detach().clone() : t.detach().to(ScalarType.Float32);

    /// <summary>Every tensor in Hugging Face naming (lm_head omitted when tied, as HF saves it).</summary>
    public IEnumerable<(string Name, Tensor Tensor)> NamedTensors()
    {
        yield return ("model.embed_tokens.weight", Embed);
        for (int i = 0; i < Blocks.Count; i++)
        {
            var b = Blocks[i];
            string p = $"model.layers.{i}.";
            yield return (p + "input_layernorm.weight", b.InputNorm);
            foreach (var k in LinearKinds.All)
            {
                yield return (p + k.HfName() + ".weight", b[k]);
                if (b.Bias(k) is Tensor bias) yield return (p + k.HfName() + ".bias", bias);
                if (k == LinearKind.O && b.QNorm is not null) yield return (p + "self_attn.q_norm.weight", b.QNorm);
                if (k == LinearKind.O && b.KNorm is not null) yield return (p + "self_attn.k_norm.weight", b.KNorm!);
            }
            yield return (p + "post_attention_layernorm.weight", b.PostNorm);
        }
        yield return ("model.norm.weight", Norm);
        if (!Config.TieWordEmbeddings) yield return ("lm_head.weight", LmHead);
    }

    public void Dispose()
    {
        Embed.Dispose();
        foreach (var b in Blocks) b.Dispose();
        Norm.Dispose();
        if (!Config.TieWordEmbeddings) LmHead.Dispose();
    }

    // ---- forward ------------------------------------------------------------------------------

    /// <summary>HF LlamaRMSNorm (and Mistral's, Qwen2's, Qwen3's, the same): in float32, x * rsqrt(mean(x²) + eps) over the last dimension, then times the weight.</summary>
    public Tensor RmsNorm(Tensor x, Tensor w)
    {
        var variance = x.Squared().mean([-1], keepdim: true);
        return w.mul(x.mul(rsqrt(variance.Plus(Config.RmsNormEps))));
    }

    /// <summary>cos and sin of the rotary embedding for positions 0..T-1, each (T, D), computed once per forward.</summary>
    public (Tensor Cos, Tensor Sin) Rope(long t)
    {
        using var scope = NewDisposeScope();   // the intermediates; cos and sin go to the caller's scope (or to the caller)
        int d = Config.HeadDim;
        // HF: inv_freq = 1 / theta^(arange(0, D, 2) / D), computed in float32 from int64 arange (1.0 / t is
        // t.reciprocal() * 1.0 in PyTorch).
        var invFreq = InverseFrequencies(Config);
        var pos = TorchOps.Arange(0, t).to(ScalarType.Float32);
        var freqs = outer(pos, invFreq.to(ScalarType.Float32));
        var emb = cat([freqs, freqs], -1);
        return (emb.cos().to(Device).MoveToOuterDisposeScope(), emb.sin().to(Device).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// RoPE's inverse frequencies (D/2), float32, as transformers' modeling_rope_utils.py computes them:
    /// _compute_default_rope_parameters, then for rope_type "linear" inv_freq / factor, for "llama3"
    /// _compute_llama3_parameters (frequencies whose wavelength exceeds original_max_position_embeddings /
    /// low_freq_factor divided by factor, those below original / high_freq_factor kept, those between
    /// interpolated). Each op is the one PyTorch runs for the Python expression (a / t is t.reciprocal() * a).
    /// </summary>
    public static Tensor InverseFrequencies(LlamaConfig config)
    {
        int d = config.HeadDim;
        using var scope = NewDisposeScope();
        var invFreq = TorchOps.PowOf(config.RopeTheta, TorchOps.Arange(0, d, 2).to(ScalarType.Float32).DividedBy(d)).reciprocal();
        switch (config.RopeScaling)
        {
            case null:
                break;
            case { Type: "linear" } r:
                invFreq = invFreq.DividedBy(r.Factor);
                break;
            case { Type: "llama3" } r:
                double old = r.OriginalMaxPositions, lowWavelen = old / r.LowFreqFactor, highWavelen = old / r.HighFreqFactor;
                using (var low = lowWavelen.ToScalar())
                using (var high = highWavelen.ToScalar())
                {
                    var wavelen = invFreq.reciprocal().Times(2 * Math.PI);
                    var scaled = where(wavelen.gt(low), invFreq.DividedBy(r.Factor), invFreq);
                    var smooth = wavelen.reciprocal().Times(old).Minus(r.LowFreqFactor).DividedBy(r.HighFreqFactor - r.LowFreqFactor);
                    var smoothed = smooth.neg().Plus(1).mul(scaled).DividedBy(r.Factor).Plus(smooth.mul(scaled));
                    var medium = wavelen.lt(high).logical_not().logical_and(wavelen.gt(low).logical_not());
                    invFreq = where(medium, smoothed, scaled);
                }
                break;
            default:
                throw new PrunerZeroException($"rope_scaling of type '{config.RopeScaling.Type}' is not implemented");
        }
        return invFreq.MoveToOuterDisposeScope();
    }

    static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        return cat([-x[.., .., .., (int)half..], x[.., .., .., ..(int)half]], -1);
    }

    /// <summary>
    /// One decoder block on h (B, T, C). <paramref name="onLinearInput"/>, when given, sees the input of each
    /// prunable linear layer (Q, K and V share one; Gate and Up share one) before it is applied.
    /// </summary>
    public Tensor BlockForward(int layer, Tensor h, Tensor cos, Tensor sin, Action<LinearKind, Tensor>? onLinearInput = null)
    {
        var b = Blocks[layer];
        if (b.IsFloat32) return BlockForward(b, h, cos, sin, onLinearInput);
        // Held in another dtype: each half converted to float32 only while it runs (the MLP's 2/3 of a block at most).
        Tensor mid;
        using (var scope = NewDisposeScope())
            mid = AttentionHalf(b.Float32Part(attention: true), h, cos, sin, onLinearInput).MoveToOuterDisposeScope();
        using (var scope = NewDisposeScope())
            return MlpHalf(b.Float32Part(attention: false), mid, onLinearInput).MoveToOuterDisposeScope();
    }

    /// <summary>One decoder block with the given float32 weights (a <see cref="LlamaBlock.Float32"/> working block).</summary>
    public Tensor BlockForward(LlamaBlock b, Tensor h, Tensor cos, Tensor sin, Action<LinearKind, Tensor>? onLinearInput = null) =>
        MlpHalf(b, AttentionHalf(b, h, cos, sin, onLinearInput), onLinearInput);

    /// <summary>A block's linear layer on x: x·Wᵀ + bias (when the family has one), then the block's adapter (LoRA) when it has one.</summary>
    public static Tensor Linear(LlamaBlock b, LinearKind kind, Tensor x)
    {
        var y = nn.functional.linear(x, b[kind], b.Bias(kind));
        return b.Adapter is { } a ? a.Apply(kind, x, y) : y;
    }

    /// <summary>The attention half of a block: h + o_proj(attention(RMSNorm(h))). Uses InputNorm, Q, K, V, O.</summary>
    public Tensor AttentionHalf(LlamaBlock b, Tensor h, Tensor cos, Tensor sin, Action<LinearKind, Tensor>? onLinearInput = null)
    {
        long bsz = h.shape[0], t = h.shape[1];
        int nh = Config.NumHeads, nkv = Config.NumKvHeads, d = Config.HeadDim;

        var x = RmsNorm(h, b.InputNorm);
        if (onLinearInput != null) { onLinearInput(LinearKind.Q, x); onLinearInput(LinearKind.K, x); onLinearInput(LinearKind.V, x); }
        var q = Linear(b, LinearKind.Q, x).view(bsz, t, nh, d);    // (B, T, H, D)
        var k = Linear(b, LinearKind.K, x).view(bsz, t, nkv, d);   // (B, T, KV, D)
        // Qwen3: q_norm / k_norm, RMSNorm over each head's D before RoPE.
        if (b.QNorm is not null) q = RmsNorm(q, b.QNorm);
        if (b.KNorm is not null) k = RmsNorm(k, b.KNorm);
        q = q.transpose(1, 2);                                                             // (B, H, T, D)
        k = k.transpose(1, 2);                                                             // (B, KV, T, D)
        var v = Linear(b, LinearKind.V, x).view(bsz, t, nkv, d).transpose(1, 2);
        q = q.mul(cos).Plus(RotateHalf(q).mul(sin));
        k = k.mul(cos).Plus(RotateHalf(k).mul(sin));
        if (nh != nkv)
        {
            // HF repeat_kv: each key/value head serves H/KV consecutive query heads.
            k = k.repeat_interleave(nh / nkv, 1);
            v = v.repeat_interleave(nh / nkv, 1);
        }
        // A sliding window shorter than the sequence: key j visible from query i when 0 <= i - j < window
        // (transformers' sliding_window_causal mask); otherwise plain causal attention.
        var attn = b.Window is int w && w < t
            ? nn.functional.scaled_dot_product_attention(q, k, v, SlidingWindowMask(t, w, q.device), 0.0, false)
            : nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, true);  // (B, H, T, D)
        attn = attn.transpose(1, 2).reshape(bsz, t, nh * d);
        onLinearInput?.Invoke(LinearKind.O, attn);
        return h.Plus(Linear(b, LinearKind.O, attn));
    }

    /// <summary>The boolean (T, T) mask of sliding-window causal attention: true where 0 &lt;= i - j &lt; window.</summary>
    public static Tensor SlidingWindowMask(long t, int window, Device device)
    {
        using var scope = NewDisposeScope();
        using var zero = 0.ToScalar();
        using var w = window.ToScalar();
        var diff = TorchOps.Arange(0, t).unsqueeze(1).sub(TorchOps.Arange(0, t).unsqueeze(0));   // i - j
        return diff.ge(zero).logical_and(diff.lt(w)).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>The MLP half of a block: h + down(silu(gate(x)) · up(x)), x = RMSNorm(h). Uses PostNorm, Gate, Up, Down.</summary>
    public Tensor MlpHalf(LlamaBlock b, Tensor h, Action<LinearKind, Tensor>? onLinearInput = null)
    {
        var x = RmsNorm(h, b.PostNorm);
        if (onLinearInput != null) { onLinearInput(LinearKind.Gate, x); onLinearInput(LinearKind.Up, x); }
        var act = nn.functional.silu(Linear(b, LinearKind.Gate, x)).mul(Linear(b, LinearKind.Up, x));
        onLinearInput?.Invoke(LinearKind.Down, act);
        return h.Plus(Linear(b, LinearKind.Down, act));
    }

    /// <summary>Token embeddings for ids (B, T).</summary>
    public Tensor EmbedTokens(Tensor ids)
    {
        var e = Embed.index_select(0, ids.to(Embed.device).reshape(-1)).view(ids.shape[0], ids.shape[1], -1);
        return e.dtype == ScalarType.Float32 ? e : e.to(ScalarType.Float32);
    }

    /// <summary>Final norm and head in float32 (the head converted for the call when held in another dtype): logits (B, T, V).</summary>
    public Tensor Logits(Tensor h)
    {
        if (LmHead.dtype == ScalarType.Float32 && Norm.dtype == ScalarType.Float32) return nn.functional.linear(RmsNorm(h, Norm), LmHead);
        // The head converted HeadSlice vocabulary rows at a time (each logit is its own dot product), not whole.
        var x = RmsNorm(h, AsFloat32(Norm));
        var parts = new List<Tensor>();
        for (long r = 0; r < LmHead.shape[0]; r += HeadSlice)
        {
            using var scope = NewDisposeScope();
            parts.Add(nn.functional.linear(x, LmHead.narrow(0, r, Math.Min(HeadSlice, LmHead.shape[0] - r)).to(ScalarType.Float32)).MoveToOuterDisposeScope());
        }
        return cat(parts, -1);
    }

    /// <summary>Vocabulary rows of the head converted to float32 at a time when the head is held in another dtype.</summary>
    public const long HeadSlice = 4096;

    /// <summary>Full forward: logits (B, T, V) for ids (B, T).</summary>
    public Tensor Forward(Tensor ids) => Logits(HiddenStates(ids));

    /// <summary>The decoder stack without the final norm and head: hidden states (B, T, C) for ids (B, T).</summary>
    public Tensor HiddenStates(Tensor ids)
    {
        var (cos, sin) = Rope(ids.shape[1]);
        var h = EmbedTokens(ids);
        for (int i = 0; i < Blocks.Count; i++)
        {
            using var scope = NewDisposeScope();
            h = BlockForward(i, h, cos, sin).MoveToOuterDisposeScope();
        }
        return h;
    }

    /// <summary>Next-token cross-entropy of ids (B, T) over its B·(T−1) predictions, as a tensor (autograd-ready).</summary>
    public Tensor NextTokenLoss(Tensor ids, nn.Reduction reduction = nn.Reduction.Mean)
    {
        var logits = Forward(ids);
        long v = logits.shape[^1];
        var pred = logits[.., ..^1, ..].reshape(-1, v);
        var target = ids[.., 1..].reshape(-1).to(pred.device);
        return nn.functional.cross_entropy(pred, target, reduction: reduction);
    }

    /// <summary>Sum of next-token negative log-likelihoods (nats) of ids (B, T), and the count of predictions.</summary>
    public (double SumNll, long Count) NextTokenNll(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var nll = NextTokenLoss(ids, nn.Reduction.Sum);
        return (nll.to(ScalarType.Float64).item<double>(), ids.shape[0] * (ids.shape[1] - 1));
    }

    /// <summary>Bytes of the weights held in memory, in their dtype.</summary>
    public long WeightBytes => NamedTensors().Sum(t => t.Tensor.NumberOfElements * t.Tensor.ElementSize);

    /// <summary>A rough upper bound on one window's activations during a forward pass, in bytes.</summary>
    public static long ActivationBytes(LlamaConfig c, long seqlen) =>
        4 * seqlen * (3L * c.VocabSize + 4L * c.IntermediateSize + 8L * c.HiddenSize + 2L * c.NumHeads * seqlen);

    public static string Gib(long bytes) => $"{bytes / (1024.0 * 1024 * 1024):0.00} GiB";
}
