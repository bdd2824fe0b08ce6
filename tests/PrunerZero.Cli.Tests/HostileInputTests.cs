using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// Hostile but fair input (issue 12): none of it may destroy data, hang, overflow the stack or end in an
/// internal failure. Each case is one clear "error:" line, exit 1, and, where the case is about order, no work first.
/// </summary>
public class HostileInputTests : TorchGuarded
{
    static readonly string Text = string.Concat(Enumerable.Range(0, 60).Select(i => $" = Section {i} = \n \n The {i} quick brown foxes jump over {i * 7} lazy dogs . \n"));

    sealed record Setup(string Model, string Wiki, string Calib, string Cache, string Dir);

    static Setup Make(string? model = null)
    {
        model ??= TestCheckpoints.Write(TestCheckpoints.Config(), seed: 5);
        string dir = TestCheckpoints.TempDir("hostile");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, Text.Replace("quick", "slow"));
        return new Setup(model, wiki, calib, Path.Combine(dir, "cache"), dir);
    }

    static string[] Common(Setup s, string? calib = null) =>
        ["--model", s.Model, "--calib", calib ?? s.Calib, "--cache", s.Cache, "--nsamples", "2", "--seqlen", "32", "--calib-sampling", "stride"];


    static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    static string[] Files(string dir) => [.. Directory.GetFiles(dir).Order().Select(f => Path.GetFileName(f) + " " + Sha(f))];

    // ---- 1. data loss: output over the input ----

    [Theory]
    [InlineData("same")]
    [InlineData("symlink")]
    [InlineData("dotdot")]
    [InlineData("trailing-slash")]
    public void PruneOutOverTheModelIsRefusedAndTheModelIsUntouched(string how)
    {
        var s = Make();
        var before = Files(s.Model);
        string outDir = how switch
        {
            "same" => s.Model,
            "dotdot" => Path.Combine(s.Model, "..", Path.GetFileName(s.Model)),
            "trailing-slash" => s.Model + "/",
            _ => Path.Combine(s.Dir, "link"),
        };
        if (how == "symlink") Directory.CreateSymbolicLink(outDir, s.Model);
        string err = CliRunner.UserError("is the input checkpoint", ["prune", .. Common(s), "--metric", "magnitude", "--out", outDir]);
        Assert.DoesNotContain("memory:", err);   // refused before anything was loaded
        Assert.Equal(before, Files(s.Model));
    }

    [Fact]
    public void TrainOverAnExistingCheckpointIsRefusedAndTheModelIsUntouched()
    {
        var s = Make();
        var before = Files(s.Model);
        CliRunner.UserError("already holds a model", "train", "--out", s.Model, "--config", "micro", "--steps", "1", "--no-eval", "--data", s.Calib);
        CliRunner.UserError("no training checkpoint", "train", "--out", s.Model, "--config", "micro", "--steps", "1", "--no-eval", "--data", s.Calib, "--resume");
        Assert.Equal(before, Files(s.Model));
    }

    // ---- 2. expression depth ----

    [Theory]
    [InlineData("abs(", 25000, ")")]
    [InlineData("mul(", 5000, ", W)")]
    [InlineData("abs(", 65, ")")]
    public void DeeplyNestedMetricFailsFastWithOneShortLine(string open, int depth, string close)
    {
        var s = Make();
        string metric = string.Concat(Enumerable.Repeat(open, depth)) + "W" + string.Concat(Enumerable.Repeat(close, depth));
        var sw = System.Diagnostics.Stopwatch.StartNew();
        string err = CliRunner.UserError($"nested deeper than {Kernels.Expr.MaxDepth} levels", ["prune", .. Common(s), "--metric", metric, "--out", Path.Combine(s.Dir, "out")]);
        Assert.True(err.Length < 1000, $"error is {err.Length} characters long");
        Assert.DoesNotContain("memory:", err);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30));   // a hang guard, not a timing claim
    }

    [Fact]
    public void MetricAtTheDepthLimitIsPrunedAndSaved()
    {
        var s = Make();
        string metric = string.Concat(Enumerable.Repeat("abs(", Kernels.Expr.MaxDepth - 1)) + "W" + new string(')', Kernels.Expr.MaxDepth - 1);
        string outDir = Path.Combine(s.Dir, "out");
        var (exit, _, err) = CliRunner.Run(["prune", .. Common(s), "--metric", metric, "--out", outDir, "--json"]);
        Assert.True(exit == 0, err);
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors")));
    }

    // ---- 3. and 4. search run identity by content, and one process per run ----

    static string[] SearchArgs(Setup s, string run) =>
        ["search", .. Common(s), "--dataset", s.Wiki, "--run", run, "--population", "3", "--iterations", "1", "--screen-windows", "2", "--report-top", "1", "--seed", "1"];

    [Theory]
    [InlineData("dataset_sha256")]
    [InlineData("calibration_sha256")]
    [InlineData("model_sha256")]
    public void ResumeWithOtherContentUnderTheSameNameIsRefused(string key)
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        var (exit, _, err) = CliRunner.Run(SearchArgs(s, run));
        Assert.True(exit == 0, err);
        switch (key)
        {
            case "dataset_sha256": File.WriteAllText(s.Wiki, Text.Replace("lazy", "sleepy")); break;
            case "calibration_sha256": File.WriteAllText(s.Calib, Text.Replace("quick", "swift")); break;
            default: TestCheckpoints.Write(TestCheckpoints.Config(), seed: 6, dir: s.Model); break;   // same names, other weights
        }
        CliRunner.UserError("input." + key, [.. SearchArgs(s, run), "--resume"]);
    }

    [Fact]
    public void SecondResumeOfARunInUseIsRefused()
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        var (exit, _, err) = CliRunner.Run(SearchArgs(s, run));
        Assert.True(exit == 0, err);
        int rows = CountEvaluations(run);
        using (RunStore.AcquireLock(run))   // what a running search holds
        {
            string e2 = CliRunner.UserError("in use by another search", [.. SearchArgs(s, run), "--resume"]);
            Assert.DoesNotContain("memory:", e2);
        }
        Assert.Equal(rows, CountEvaluations(run));
        var (exit3, _, err3) = CliRunner.Run([.. SearchArgs(s, run), "--resume"]);   // the lock is gone with its holder
        Assert.True(exit3 == 0, err3);
    }

    static int CountEvaluations(string run)
    {
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(run, RunStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM evaluations";
        return Convert.ToInt32(cmd.ExecuteScalar());
    }

    [Theory]
    [InlineData("random")]
    [InlineData("text")]
    public void CorruptSearchDatabaseIsRefused(string kind)
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        var bytes = kind == "random" ? RandomNumberGenerator.GetBytes(8192) : Encoding.UTF8.GetBytes("this is not a database\n");
        File.WriteAllBytes(Path.Combine(run, RunStore.FileName), bytes);
        CliRunner.UserError("not a readable search database", [.. SearchArgs(s, run), "--resume"]);
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(run, RunStore.FileName)));
    }

    [Fact]
    public void SearchOnAnExistingRunWithoutResumeIsRefusedBeforeLoading()
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        var (exit, _, err) = CliRunner.Run(SearchArgs(s, run));
        Assert.True(exit == 0, err);
        string e2 = CliRunner.UserError("pass --resume", SearchArgs(s, run));
        Assert.DoesNotContain("memory:", e2);
    }

    [Theory]
    [InlineData("--population", "0", "--population")]
    [InlineData("--max-depth", "40", "--max-depth")]
    [InlineData("--mutation", "1.5", "--mutation")]
    [InlineData("--screen-windows", "0", "--screen-windows")]
    [InlineData("--top-k", "0", "--top-k")]
    public void SearchOptionsAreCheckedByName(string flag, string value, string expected)
    {
        var s = Make();
        var args = SearchArgs(s, TestCheckpoints.TempDir("run")).ToList();
        if (args.IndexOf(flag) is int i and >= 0) args[i + 1] = value;
        else args.AddRange([flag, value]);
        CliRunner.UserError(expected, [.. args]);
    }

    // ---- 5. safetensors: overlapping tensors, wrong kinds ----

    /// <summary>Re-serialises the JSON header of a safetensors file (padded to 8 bytes) and keeps its data bytes.</summary>
    internal static void RewriteHeader(string file, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(file);
        int n = (int)BitConverter.ToUInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, n))!.AsObject();
        edit(header);
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = new byte[(json.Length + 7) / 8 * 8];
        Array.Fill(padded, (byte)' ');
        json.CopyTo(padded, 0);
        using var fs = File.Create(file);
        fs.Write(BitConverter.GetBytes((ulong)padded.Length));
        fs.Write(padded);
        fs.Write(bytes, 8 + n, bytes.Length - 8 - n);
    }

    [Fact]
    public void OverlappingTensorsAreRefused()
    {
        var s = Make();
        RewriteHeader(Path.Combine(s.Model, "model.safetensors"), h =>
        {
            // k_proj's bytes alias the start of q_proj's (same size as before, so only the overlap is wrong).
            var q = h["model.layers.0.self_attn.q_proj.weight"]!["data_offsets"]!.AsArray();
            var k = h["model.layers.0.self_attn.k_proj.weight"]!["data_offsets"]!.AsArray();
            long qb = q[0]!.GetValue<long>(), kLen = k[1]!.GetValue<long>() - k[0]!.GetValue<long>();
            h["model.layers.0.self_attn.k_proj.weight"]!["data_offsets"] = new JsonArray(qb, qb + kLen);
        });
        CliRunner.UserError("overlap", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
    }

    [Theory]
    [InlineData("string-shape")]
    [InlineData("fraction-offset")]
    [InlineData("overflowing-shape")]
    public void MalformedHeaderValuesAreRefused(string how)
    {
        var s = Make();
        RewriteHeader(Path.Combine(s.Model, "model.safetensors"), h =>
        {
            var e = h["model.norm.weight"]!.AsObject();
            switch (how)
            {
                case "string-shape": e["shape"] = new JsonArray("32"); break;
                case "fraction-offset": e["data_offsets"] = new JsonArray(0.5, 128); break;
                default: e["shape"] = new JsonArray(long.MaxValue / 2, 4); break;
            }
        });
        CliRunner.UserError("model.safetensors", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
    }

    // ---- sharded checkpoints: every shard name is untrusted ----

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/tmp/outside.safetensors")]
    [InlineData("sub/model.safetensors")]
    public void ShardIndexPointingOutsideTheFolderIsRefused(string shard)
    {
        var s = Make();
        string single = Path.Combine(s.Model, "model.safetensors");
        // The file the index names exists (so only the path rule can refuse it).
        string target = Path.IsPathRooted(shard) ? shard : Path.GetFullPath(Path.Combine(s.Model, shard));
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Copy(single, target, overwrite: true);
        File.Delete(single);
        File.WriteAllText(Path.Combine(s.Model, "model.safetensors.index.json"),
            new JsonObject { ["weight_map"] = new JsonObject { ["model.norm.weight"] = shard } }.ToJsonString());
        CliRunner.UserError("plain file names", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
    }

    // ---- 6. config numbers ----

    [Theory]
    [InlineData("rms_norm_eps", 0.0)]
    [InlineData("rms_norm_eps", -1e-5)]
    [InlineData("rope_theta", 0.0)]
    [InlineData("rope_theta", -10000.0)]
    [InlineData("max_position_embeddings", 0.0)]
    [InlineData("bos_token_id", 5000.0)]
    public void NonsensicalConfigNumbersAreRefusedAtLoad(string key, double value)
    {
        var s = Make();
        var cfg = TestCheckpoints.Config();
        cfg[key] = key is "max_position_embeddings" or "bos_token_id" ? (int)value : value;
        File.WriteAllText(Path.Combine(s.Model, "config.json"), cfg.ToJsonString());
        string err = CliRunner.UserError(key, "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
        Assert.DoesNotContain("memory:", err);
    }

    [Theory]
    [InlineData("architectures", "'architectures' must be a list of strings")]
    [InlineData("rms_norm_eps", "rms_norm_eps")]
    [InlineData("hidden_act", "hidden_act")]
    public void ConfigValueOfTheWrongKindIsRefused(string key, string expected)
    {
        var s = Make();
        var cfg = TestCheckpoints.Config();
        switch (key)
        {
            case "architectures": cfg["architectures"] = new JsonArray(5); cfg["model_type"] = "gpt2"; break;
            case "rms_norm_eps": cfg["rms_norm_eps"] = "small"; break;
            default: cfg["hidden_act"] = new JsonArray("silu"); break;
        }
        File.WriteAllText(Path.Combine(s.Model, "config.json"), cfg.ToJsonString());
        CliRunner.UserError(expected, "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
    }

    // ---- 7. NaN weights with --json ----

    [Fact]
    public void NonFinitePerplexityIsWrittenAsNullWithAReason()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), scale: float.NaN);
        var s = Make(model);
        var (exit, stdout, err) = CliRunner.Run("eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2", "--json");
        Assert.True(exit == 1, $"exit {exit}: {err}");   // the error text says why when it is not 1
        Assert.DoesNotContain("internal failure", err);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("perplexity").ValueKind);
        Assert.Contains("NaN", doc.RootElement.GetProperty("perplexity_note").GetString());
        Assert.Contains("error: perplexity is NaN", err);
    }

    // ---- 8. token ids past the embedding ----

    [Fact]
    public void TokenIdOutsideTheVocabularyIsRefusedBeforeWork()
    {
        // The tokenizer has ids 0..258 ("th" = 258); the embedding only 258 rows.
        string model = TestCheckpoints.Write(TestCheckpoints.Config(vocab: 258));
        var s = Make(model);
        File.WriteAllText(s.Wiki, Text.Replace("lazy", "the lazy"));   // "th" is one token, id 258
        File.WriteAllText(s.Calib, Text.Replace("lazy", "the lazy"));
        string err = CliRunner.UserError("outside the model's vocabulary", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
        Assert.Contains("id 258", err);
        Assert.DoesNotContain("memory:", err);
        CliRunner.UserError("outside the model's vocabulary", ["prune", .. Common(s), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
    }

    // ---- 9. invalid UTF-8 ----

    [Fact]
    public void InvalidUtf8InTheDatasetIsRefusedWithTheByteOffset()
    {
        var s = Make();
        var bytes = Encoding.UTF8.GetBytes(Text).ToList();
        bytes.Insert(100, 0xFF);
        File.WriteAllBytes(s.Wiki, [.. bytes]);
        CliRunner.UserError("invalid UTF-8 at byte 100", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "2");
    }

    [Fact]
    public void InvalidUtf8InTheCalibrationIsRefusedWithTheByteOffset()
    {
        var s = Make();
        var bytes = Encoding.UTF8.GetBytes(Text).ToList();
        bytes.InsertRange(7, [0xC3, 0x28]);   // a lead byte without its continuation
        File.WriteAllBytes(s.Calib, [.. bytes]);
        CliRunner.UserError("invalid UTF-8 at byte 7", ["prune", .. Common(s), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
    }

    // ---- 10. broken calibration line, 11. not gzip ----

    [Fact]
    public void BrokenCalibrationLineNamesItsLineNumber()
    {
        var s = Make();
        string jsonl = Path.Combine(s.Dir, "calib.jsonl");
        File.WriteAllLines(jsonl, [JsonSerializer.Serialize(new { text = Text }), "", JsonSerializer.Serialize(new { text = Text }), "{\"text\": \"broken", JsonSerializer.Serialize(new { text = Text })]);
        CliRunner.UserError("calib.jsonl:4:", ["prune", .. Common(s, jsonl), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
    }

    [Fact]
    public void GzFileThatIsNotGzipIsRefused()
    {
        var s = Make();
        string gz = Path.Combine(s.Dir, "calib.jsonl.gz");
        File.WriteAllText(gz, JsonSerializer.Serialize(new { text = Text }) + "\n");
        CliRunner.UserError("not a gzip file", ["prune", .. Common(s, gz), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
    }

    [Fact]
    public void TruncatedGzipIsRefused()
    {
        var s = Make();
        string gz = Path.Combine(s.Dir, "calib.jsonl.gz");
        using (var ms = new MemoryStream())
        {
            using (var z = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true))
                z.Write(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(JsonSerializer.Serialize(new { text = Text }) + "\n", 20))));
            File.WriteAllBytes(gz, ms.ToArray()[..(int)(ms.Length / 2)]);
        }
        CliRunner.UserError("calib.jsonl.gz", ["prune", .. Common(s, gz), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
    }

    // ---- 11. N:M that does not divide, train --steps 0 ----

    [Fact]
    public void NMGroupThatDoesNotDivideTheLayersIsRefusedBeforeWork()
    {
        var s = Make();
        string err = CliRunner.UserError("--nm 2:3", ["prune", .. Common(s), "--metric", "magnitude", "--nm", "2:3", "--out", Path.Combine(s.Dir, "out")]);
        Assert.DoesNotContain("memory:", err);
    }

    [Theory]
    [InlineData("--steps", "0")]
    [InlineData("--minutes", "0")]
    public void TrainCountsAreChecked(string flag, string value)
    {
        var s = Make();
        CliRunner.UserError(flag, "train", "--out", Path.Combine(s.Dir, "new-model"), "--config", "micro", flag, value, "--no-eval", "--data", s.Calib);
    }

    // ---- 12. unwritable outputs, found before the work ----

    [Fact]
    public void UnwritableOutIsFoundBeforePruning()
    {
        var s = Make();
        string file = Path.Combine(s.Dir, "a-file");
        File.WriteAllText(file, "x");
        string err = CliRunner.UserError("cannot be written", ["prune", .. Common(s), "--metric", "magnitude", "--out", Path.Combine(file, "out")]);
        Assert.DoesNotContain("memory:", err);
        Assert.DoesNotContain("overall sparsity", err);
    }

    [Fact]
    public void UnwritableCsvIsFoundBeforeScoring()
    {
        var s = Make();
        string file = Path.Combine(s.Dir, "a-file");
        File.WriteAllText(file, "x");
        string metrics = Path.Combine(s.Dir, "lib.txt");
        File.WriteAllLines(metrics, ["magnitude"]);
        string err = CliRunner.UserError("--csv", ["score", .. Common(s), "--dataset", s.Wiki, "--metrics", metrics, "--csv", Path.Combine(file, "table.csv")]);
        Assert.DoesNotContain("memory:", err);
        CliRunner.UserError("is a folder", ["score", .. Common(s), "--dataset", s.Wiki, "--metrics", metrics, "--csv", s.Dir]);
    }

    // ---- 13. bench counts ----

    [Theory]
    [InlineData("--repeat", "0")]
    [InlineData("--screen-windows", "0")]
    public void BenchCountsAreCheckedByName(string flag, string value)
    {
        var s = Make();
        string err = CliRunner.UserError(flag + " must be at least 1", ["bench", .. Common(s), "--dataset", s.Wiki, flag, value]);
        Assert.DoesNotContain("memory:", err);
    }

    [Theory]
    [InlineData("--nsamples", "0")]
    [InlineData("--seqlen", "1")]
    [InlineData("--seqlen", "65")]
    [InlineData("--windows", "0")]
    public void SharedCountsAreCheckedBeforeWork(string flag, string value)
    {
        var s = Make();
        var args = Common(s).Concat(["--eval", "--dataset", s.Wiki, "--windows", "2"]).ToList();   // --dataset and --windows apply to prune --eval
        int i = args.IndexOf(flag);
        args[i + 1] = value;
        string err = CliRunner.UserError(flag, ["prune", .. args, "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")]);
        Assert.DoesNotContain("memory:", err);
    }
}
