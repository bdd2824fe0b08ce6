using System.Text.Json;
using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>Tiny random-weight LLaMA checkpoints in Hugging Face layout, written by the tests themselves.</summary>
public static class TestCheckpoints
{
    public static string TempDir(string tag)
    {
        string d = Path.Combine(Path.GetTempPath(), "pz-tests", $"{tag}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    public static JsonObject Config(bool tied = false, string dtype = "float32", int vocab = 300, int kvHeads = 2) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = 32,
        ["intermediate_size"] = 48,
        ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4,
        ["num_key_value_heads"] = kvHeads,
        ["hidden_act"] = "silu",
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["max_position_embeddings"] = 64,
        ["vocab_size"] = vocab,
        ["tie_word_embeddings"] = tied,
        ["torch_dtype"] = dtype,
        ["bos_token_id"] = 256,
        ["eos_token_id"] = 257,
    };

    /// <summary>A tiny config of a family (C 32, 4 heads, 2 layers) in the config.json keys that family's files carry.</summary>
    public static JsonObject FamilyConfig(string family, bool tied = false, string dtype = "float32", int kvHeads = 2)
    {
        var o = Config(tied, dtype, kvHeads: kvHeads);
        switch (family)
        {
            case "llama3":
                // head_dim 8: inverse frequencies 1, 0.1, 0.01, 0.001 (wavelengths 6.3, 63, 628, 6283): with original
                // 1024, low 1, high 4 one is kept, ..., one is interpolated, one divided by the factor.
                o["rope_scaling"] = new JsonObject
                {
                    ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
                    ["original_max_position_embeddings"] = 1024,
                };
                o["head_dim"] = 8;
                break;
            case "llama-linear":
                o["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 };
                break;
            case "llama-bias":
                o["attention_bias"] = true;
                o["mlp_bias"] = true;
                break;
            case "mistral-window":
                o["architectures"] = new JsonArray("MistralForCausalLM");
                o["model_type"] = "mistral";
                o["sliding_window"] = 4;
                break;
            case "qwen2":
            case "qwen2-window":
                o["architectures"] = new JsonArray("Qwen2ForCausalLM");
                o["model_type"] = "qwen2";
                o["rms_norm_eps"] = 1e-6;
                o["rope_theta"] = 1000000.0;
                o["use_sliding_window"] = family == "qwen2-window";
                o["sliding_window"] = 5;
                o["max_window_layers"] = 1;   // layer 1 slides when use_sliding_window
                break;
            case "qwen3":
                o["architectures"] = new JsonArray("Qwen3ForCausalLM");
                o["model_type"] = "qwen3";
                o["head_dim"] = 12;           // not hidden_size / heads (8)
                o["rms_norm_eps"] = 1e-6;
                o["attention_bias"] = false;
                o["use_sliding_window"] = false;
                o["sliding_window"] = null;
                break;
            default:
                throw new ArgumentException(family);
        }
        return o;
    }

    /// <summary>Writes config.json, model.safetensors (in the config's dtype) and a byte-level tokenizer.json.</summary>
    public static string Write(JsonObject config, int seed = 1, string? dir = null, float scale = 0.2f)
    {
        dir ??= TempDir("ckpt");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var cfg = LlamaConfig.FromJson(config);
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        var dtype = SafeTensors.ScalarTypeOf(cfg.TorchDtype);
        long c = cfg.HiddenSize, f = cfg.IntermediateSize, hd = cfg.NumHeads * cfg.HeadDim, kvd = cfg.NumKvHeads * cfg.HeadDim;
        var tensors = new List<(string, Tensor)>();
        void Add(string name, params long[] shape) => tensors.Add((name, randn(shape, generator: gen).TimesInPlace(scale).to(dtype)));
        void AddNorm(string name) => tensors.Add((name, randn([c], generator: gen).TimesInPlace(0.1).Plus(1).to(dtype)));
        Add("model.embed_tokens.weight", cfg.VocabSize, c);
        for (int i = 0; i < cfg.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            AddNorm(p + "input_layernorm.weight");
            Add(p + "self_attn.q_proj.weight", hd, c);
            Add(p + "self_attn.k_proj.weight", kvd, c);
            Add(p + "self_attn.v_proj.weight", kvd, c);
            Add(p + "self_attn.o_proj.weight", c, hd);
            AddNorm(p + "post_attention_layernorm.weight");
            Add(p + "mlp.gate_proj.weight", f, c);
            Add(p + "mlp.up_proj.weight", f, c);
            Add(p + "mlp.down_proj.weight", c, f);
            // The family's extra tensors (none for a plain Llama config, whose draws stay as they were).
            long[] outDim = [hd, kvd, kvd, c, f, f, c];
            foreach (var k in LinearKinds.All.Where(cfg.HasBias)) Add(p + k.HfName() + ".bias", outDim[(int)k]);
            if (cfg.QkNorm)
                foreach (var n in new[] { "q_norm", "k_norm" })
                    tensors.Add((p + $"self_attn.{n}.weight", randn([cfg.HeadDim], generator: gen).TimesInPlace(0.1).Plus(1).to(dtype)));
        }
        AddNorm("model.norm.weight");
        if (!cfg.TieWordEmbeddings) Add("lm_head.weight", cfg.VocabSize, c);
        SafeTensors.Write(Path.Combine(dir, "model.safetensors"), tensors);
        WriteByteTokenizer(dir);
        return dir;
    }

    /// <summary>A byte-level BPE tokenizer.json: the 256 byte symbols, one merge ("t","h"), and &lt;s&gt; / &lt;/s&gt; as 256 / 257.</summary>
    public static void WriteByteTokenizer(string dir)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteLevel.ByteToChar[b].ToString()] = b;
        vocab["<s>"] = 256;
        vocab["</s>"] = 257;
        vocab["th"] = 258;
        var tok = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                Added(256, "<s>"),
                Added(257, "</s>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab, ["merges"] = new JsonArray("t h"),
            },
        };
        static JsonObject Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tok.ToJsonString());
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"add_bos_token": true, "bos_token": "<s>", "eos_token": "</s>"}""");
    }

    public static float[] Floats(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.to(ScalarType.Float32).contiguous().data<float>().ToArray();
    }
}
