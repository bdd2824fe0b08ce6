using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Tests;
using PrunerZero.Search;

namespace PrunerZero.Cli.Tests;

/// <summary>
/// Issue 22, sections 2 and 6: an output never overwrites what it does not own (no output is an input of the same
/// command, through symlinks and hard links; no checkpoint into a folder holding one; a database is recognised
/// read-only before a write), and every other bad input (a file where a folder is expected, a JSON value of the wrong
/// type, a malformed cluster URI, an empty search.db, a text input that never ends) is one line before the work.
/// Every case asserts the exit code, the message and that the victim's bytes are unchanged.
/// </summary>
public class OutputSafetyTests : TorchGuarded
{
    static readonly string Text = string.Concat(Enumerable.Range(0, 60).Select(i => $" = Section {i} = \n \n The {i} quick brown foxes jump over {i * 7} lazy dogs . \n"));

    sealed record Setup(string Model, string Wiki, string Calib, string Cache, string Dir);

    static Setup Make()
    {
        string model = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 5);
        string dir = TestCheckpoints.TempDir("safety");
        string wiki = Path.Combine(dir, "wiki.test.raw");
        File.WriteAllText(wiki, Text);
        string calib = Path.Combine(dir, "calib.txt");
        File.WriteAllText(calib, Text.Replace("quick", "slow"));
        return new Setup(model, wiki, calib, Path.Combine(dir, "cache"), dir);
    }

    static string[] Common(Setup s, string? cache = null) =>
        ["--model", s.Model, "--dataset", s.Wiki, "--calib", s.Calib, "--cache", cache ?? s.Cache, "--nsamples", "2", "--seqlen", "32", "--calib-sampling", "stride", "--windows", "2"];

    static string[] StatsArgs(Setup s) => ["stats", "--model", s.Model, "--calib", s.Calib, "--nsamples", "2", "--seqlen", "32", "--calib-sampling", "stride"];

    static string[] SearchArgs(Setup s, string run) =>
        ["search", .. Common(s)[..^2], "--run", run, "--population", "3", "--iterations", "1", "--screen-windows", "2", "--report-top", "1", "--seed", "1"];

    static string Sha(string file) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(file)));

    static string[] Files(string dir) => [.. Directory.GetFiles(dir).Order().Select(f => Path.GetFileName(f) + " " + Sha(f))];

    static void HardLink(string target, string link)
    {
        var p = System.Diagnostics.Process.Start("ln", [target, link])!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    static string Metrics(Setup s)
    {
        string lib = Path.Combine(s.Dir, "library.txt");
        File.WriteAllText(lib, "# my metrics\nmagnitude\nwanda\n");
        return lib;
    }

    // ---- section 2: an output never overwrites what it does not own ----

    [Fact]
    public void SynthOutOverACheckpointIsRefusedAndTheCheckpointIsUntouched()
    {
        var s = Make();
        File.WriteAllText(Path.Combine(s.Model, "README.md"), "the card of this model\n");
        var before = Files(s.Model);
        CliRunner.UserError("already holds checkpoint files", "synth", "--preset", "tiny", "--layers", "1", "--out", s.Model);
        Assert.Equal(before, Files(s.Model));
    }

    [Fact]
    public void PruneOutOverAnotherCheckpointIsRefusedBeforeWork()
    {
        var s = Make();
        string other = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 9);
        var before = Files(other);
        string err = CliRunner.UserError("already holds checkpoint files", ["prune", "--eval", .. Common(s), "--metric", "magnitude", "--out", other]);
        Assert.DoesNotContain("memory:", err);
        Assert.Equal(before, Files(other));
    }

    [Fact]
    public void PruneOutIntoAFolderWithOnlyATokenizerFileIsRefused()
    {
        var s = Make();
        string dir = TestCheckpoints.TempDir("half");
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{}");
        CliRunner.UserError("tokenizer_config.json", ["prune", "--eval", .. Common(s), "--metric", "magnitude", "--out", dir]);
        Assert.Equal("{}", File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")));
    }

    [Theory]
    [InlineData("same")]
    [InlineData("symlink")]
    [InlineData("hardlink")]
    [InlineData("dotdot")]
    public void StatsCsvOverTheModelsConfigIsRefused(string how)
    {
        var s = Make();
        string config = Path.Combine(s.Model, "config.json");
        var before = Files(s.Model);
        string csv = how switch
        {
            "same" => config,
            "dotdot" => Path.Combine(s.Model, "..", Path.GetFileName(s.Model), "config.json"),
            _ => Path.Combine(s.Dir, "stats.csv"),
        };
        if (how == "symlink") File.CreateSymbolicLink(csv, config);
        if (how == "hardlink") HardLink(config, csv);
        string err = CliRunner.UserError(how == "hardlink" ? "the same file" : "--csv", [.. StatsArgs(s), "--csv", csv]);
        Assert.Contains(how == "hardlink" ? "config.json" : "--model", err);
        Assert.Equal(before, Files(s.Model));
        var (exit, _, e2) = CliRunner.Run("eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "1");
        Assert.True(exit == 0, e2);   // the model still loads
    }

    [Fact]
    public void StatsCsvOverTheCalibrationIsRefused()
    {
        var s = Make();
        string before = Sha(s.Calib);
        CliRunner.UserError("is the input --calib", [.. StatsArgs(s), "--csv", s.Calib]);
        Assert.Equal(before, Sha(s.Calib));
    }

    [Fact]
    public void StatsCsvInsideTheModelFolderIsRefused()
    {
        var s = Make();
        var before = Files(s.Model);
        // A new file there would change the model: tokenizer.model would become its tokenizer.
        CliRunner.UserError("inside the input --model folder", [.. StatsArgs(s), "--csv", Path.Combine(s.Model, "tokenizer.model")]);
        Assert.Equal(before, Files(s.Model));
    }

    [Theory]
    [InlineData("same")]
    [InlineData("symlink")]
    [InlineData("hardlink")]
    public void ScoreCsvOverTheMetricLibraryIsRefused(string how)
    {
        var s = Make();
        string lib = Metrics(s);
        string before = Sha(lib);
        string csv = how == "same" ? lib : Path.Combine(s.Dir, "out.csv");
        if (how == "symlink") File.CreateSymbolicLink(csv, lib);
        if (how == "hardlink") HardLink(lib, csv);
        string err = CliRunner.UserError("is the input --metrics", ["score", .. Common(s), "--metrics", lib, "--csv", csv]);
        Assert.DoesNotContain("memory:", err);
        Assert.Equal(before, Sha(lib));
    }

    [Fact]
    public void ScoreCsvOverTheDatasetIsRefused()
    {
        var s = Make();
        string before = Sha(s.Wiki);
        CliRunner.UserError("is the input --dataset", ["score", .. Common(s), "--metrics", Metrics(s), "--csv", s.Wiki]);
        Assert.Equal(before, Sha(s.Wiki));
    }

    [Fact]
    public void SearchResumeOnAnotherProgramsSqliteIsRefusedAndTheFileIsUnchanged()
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        string db = Path.Combine(run, RunStore.FileName);
        using (var c = new SqliteConnection($"Data Source={db};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "CREATE TABLE contacts (name TEXT, phone TEXT); INSERT INTO contacts VALUES ('ada', '123');";
            cmd.ExecuteNonQuery();
        }
        byte[] before = File.ReadAllBytes(db);
        string err = CliRunner.UserError("not a search run of this program", [.. SearchArgs(s, run), "--resume"]);
        Assert.Contains("contacts", err);
        Assert.DoesNotContain("memory:", err);
        Assert.Equal(before, File.ReadAllBytes(db));
        Assert.False(File.Exists(db + "-wal"));
        // Also through RunStore itself (SearchRun opens it under its lock): refused with the file unchanged.
        var e = Assert.Throws<RunStoreException>(() => RunStore.Open(db, new Dictionary<string, string> { ["seed"] = "1" }, resume: true));
        Assert.Contains("not a search run", e.Message);
        Assert.Equal(before, File.ReadAllBytes(db));
    }

    [Fact]
    public void ARunLeftByAKilledSearchIsStillRecognisedReadOnly()
    {
        // A kill -9 leaves search.db with its -wal and -shm files: the read-only check must still recognise the run.
        string run = TestCheckpoints.TempDir("run"), copy = TestCheckpoints.TempDir("run-copy");
        var p = new Dictionary<string, string> { ["seed"] = "1" };
        using (var store = RunStore.Open(Path.Combine(run, RunStore.FileName), p, resume: false))
        {
            foreach (var f in Directory.GetFiles(run).Where(f => Path.GetFileName(f).StartsWith(RunStore.FileName)))
                File.Copy(f, Path.Combine(copy, Path.GetFileName(f)));
        }
        Assert.True(File.Exists(Path.Combine(copy, RunStore.FileName + "-wal")));
        RunStore.Recognise(Path.Combine(copy, RunStore.FileName));
        using var again = RunStore.Open(Path.Combine(copy, RunStore.FileName), p, resume: true);
    }

    [Fact]
    public void SearchRunInsideTheModelFolderIsRefused()
    {
        var s = Make();
        var before = Files(s.Model);
        CliRunner.UserError("inside the input --model folder", SearchArgs(s, Path.Combine(s.Model, "run")));
        CliRunner.UserError("is the input --model folder", SearchArgs(s, s.Model));
        Assert.Equal(before, Files(s.Model));
        Assert.False(Directory.Exists(Path.Combine(s.Model, "run")));
    }

    [Fact]
    public void SearchRunHoldingTheCalibrationUnderAReportNameIsRefused()
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        string calib = Path.Combine(run, "report.md");   // the search would write its report over it
        File.WriteAllText(calib, Text);
        CliRunner.UserError("is the input --calib", [.. SearchArgs(s, run).Select(a => a == s.Calib ? calib : a)]);
        Assert.Equal(Text, File.ReadAllText(calib));
    }

    [Fact]
    public void CacheInsideTheModelFolderIsRefused()
    {
        var s = Make();
        var before = Files(s.Model);
        CliRunner.UserError("--cache", ["prune", "--eval", .. Common(s, cache: s.Model), "--metric", "wanda", "--out", Path.Combine(s.Dir, "out")]);
        // CACHE/gradients is where G is written: a model folder named so is refused too.
        string gradients = Path.Combine(TestCheckpoints.TempDir("cache"), "gradients");
        TestCheckpoints.Write(TestCheckpoints.Config(), seed: 5, dir: Directory.CreateDirectory(gradients).FullName);
        var s2 = s with { Model = gradients };
        CliRunner.UserError("--cache", ["prune", "--eval", .. Common(s2, cache: Path.GetDirectoryName(gradients)), "--metric", "wanda", "--out", Path.Combine(s.Dir, "out2")]);
        Assert.Equal(before, Files(s.Model));
        Assert.False(Directory.Exists(Path.Combine(s.Model, "gradients")));
    }

    [Fact]
    public void TrainDataInsideOutIsRefused()
    {
        var s = Make();
        string outDir = TestCheckpoints.TempDir("train");
        string data = Path.Combine(outDir, "README.md");   // the model card would be written over it
        File.WriteAllText(data, Text);
        CliRunner.UserError("holds the input --data", "train", "--out", outDir, "--config", "micro", "--steps", "1", "--no-eval", "--data", data);
        Assert.Equal(Text, File.ReadAllText(data));
        Assert.Single(Directory.GetFileSystemEntries(outDir));
    }

    [Fact]
    public void ZeroShotTaskFileAsScoreCsvIsRefused()
    {
        var s = Make();
        string task = Path.Combine(s.Dir, "arc.jsonl");
        File.WriteAllText(task, "{}\n");
        CliRunner.UserError("is the input --zeroshot-tasks", ["score", .. Common(s), "--metrics", Metrics(s), "--zeroshot", "--zeroshot-tasks", "arc_easy=" + task, "--csv", task]);
        Assert.Equal("{}\n", File.ReadAllText(task));
    }

    // ---- section 6: the same standard for the rest ----

    [Fact]
    public void SynthOutThatIsAFileIsRefused()
    {
        var s = Make();
        string file = Path.Combine(s.Dir, "a-file");
        File.WriteAllText(file, "mine");
        CliRunner.UserError("is a file, not a folder", "synth", "--preset", "tiny", "--layers", "1", "--out", file);
        Assert.Equal("mine", File.ReadAllText(file));
    }

    [Fact]
    public void CacheThatIsAFileOrReadOnlyIsRefusedBeforeWork()
    {
        var s = Make();
        string file = Path.Combine(s.Dir, "a-file");
        File.WriteAllText(file, "mine");
        string err = CliRunner.UserError("is a file, not a folder", ["prune", "--eval", .. Common(s, cache: file), "--metric", "wanda", "--out", Path.Combine(s.Dir, "out")]);
        Assert.DoesNotContain("memory:", err);
        Assert.Equal("mine", File.ReadAllText(file));
        // /proc refuses new folders even to root: it stands in for a read-only mount.
        CliRunner.UserError("--cache /proc/pz-cache cannot be written", ["bench", .. Common(s, cache: "/proc/pz-cache")[..^2], "--repeat", "1", "--screen-windows", "1"]);
        CliRunner.UserError("--out /proc/pz-synth cannot be written", "synth", "--preset", "tiny", "--layers", "1", "--out", "/proc/pz-synth");
    }

    [Theory]
    [InlineData("add_bos_token", "\"false\"", "must be true or false, found the string \"false\"")]
    [InlineData("add_eos_token", "1", "must be true or false, found the number 1")]
    [InlineData("tokenizer_class", "5", "must be a string, found the number 5")]
    [InlineData("bos_token", "256", "must be a string or an object")]
    [InlineData("eos_token", "{\"content\": 7}", "eos_token.content' must be a string")]
    public void TokenizerConfigValueOfTheWrongTypeIsRefused(string key, string json, string expected)
    {
        var s = Make();
        string tc = Path.Combine(s.Model, "tokenizer_config.json");
        File.WriteAllText(tc, $"{{\"{key}\": {json}}}");
        string err = CliRunner.UserError(expected, "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "1");
        Assert.Contains(tc, err);
        Assert.Contains($"'{key}", err);
    }

    [Fact]
    public void SpecialTokensMapOfTheWrongTypeIsRefused()
    {
        var s = Make();
        string stm = Path.Combine(s.Model, "special_tokens_map.json");
        File.WriteAllText(stm, "{\"bos_token\": [\"<s>\"]}");
        string err = CliRunner.UserError("must be a string or an object", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "1");
        Assert.Contains(stm, err);
    }

    [Theory]
    [InlineData("head_dim", "[8]", "'head_dim' must be an integer, found a list")]
    [InlineData("rope_scaling", "\"linear\"", "'rope_scaling' must be an object or null, found the string")]
    [InlineData("rope_theta", "\"10000\"", "'rope_theta' must be a number, found the string")]
    [InlineData("max_position_embeddings", "true", "'max_position_embeddings' must be an integer, found the boolean")]
    [InlineData("architectures", "[5]", "'architectures' must be a list of strings")]
    [InlineData("tie_word_embeddings", "\"false\"", "'tie_word_embeddings' must be true or false, found the string")]
    [InlineData("eos_token_id", "[\"</s>\"]", "'eos_token_id' must be an integer or a list of integers")]
    public void ConfigValueOfTheWrongTypeNamesFileKeyTypeAndValue(string key, string json, string expected)
    {
        var s = Make();
        string cfgPath = Path.Combine(s.Model, "config.json");
        var cfg = TestCheckpoints.Config();
        cfg[key] = JsonNode.Parse(json);
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        string err = CliRunner.UserError(expected, "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "1");
        Assert.Contains(cfgPath, err);
    }

    [Fact]
    public void EosTokenIdListAsLlama3WritesItIsRead()
    {
        var cfg = TestCheckpoints.Config();
        cfg["eos_token_id"] = new JsonArray(257, 256);
        Assert.Equal(257, LlamaConfig.FromJson(cfg).EosTokenId);
    }

    [Theory]
    [InlineData("redis://host:notaport", "the port 'notaport' is not a number")]
    [InlineData("redis://host", "no port")]
    [InlineData("redis://host:70000", "the port '70000'")]
    [InlineData("redis://:6379", "the host ''")]
    [InlineData("redis://ho st:6379", "the host 'ho st'")]
    public void MalformedClusterUriIsRefusedBeforeWork(string spec, string expected)
    {
        var s = Make();
        string err = CliRunner.UserError(expected, ["worker", .. Common(s)[..^2], "--cluster", spec]);
        Assert.DoesNotContain("memory:", err);
        string run = TestCheckpoints.TempDir("run");
        // --cache is refused with --cluster (the workers keep G): the search's own args without it.
        var clusterArgs = SearchArgs(s, run).ToList();
        clusterArgs.RemoveRange(clusterArgs.IndexOf("--cache"), 2);
        err = CliRunner.UserError(expected, [.. clusterArgs, "--cluster", spec]);
        Assert.DoesNotContain("sha256", err);
    }

    [Fact]
    public void WorkerAdvertiseThatIsNoAddressIsRefused()
    {
        var s = Make();
        CliRunner.UserError("--advertise not-an-ip: not an IP address", ["worker", .. Common(s)[..^2], "--cluster", "redis://127.0.0.1:6379", "--advertise", "not-an-ip"]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EmptySearchDbIsRefusedWithTheTrueReason(bool resume)
    {
        var s = Make();
        string run = TestCheckpoints.TempDir("run");
        string db = Path.Combine(run, RunStore.FileName);
        File.WriteAllBytes(db, []);
        string[] args = resume ? [.. SearchArgs(s, run), "--resume"] : SearchArgs(s, run);
        string err = CliRunner.UserError("is empty (0 bytes)", args);
        Assert.DoesNotContain("already holds", err);
        Assert.Equal(0, new FileInfo(db).Length);
    }

    [Theory]
    [InlineData("calib")]
    [InlineData("dataset")]
    public void DevZeroAsTextIsRefusedBeforeReading(string which)
    {
        var s = Make();
        string[] args = ["prune", "--eval", .. Common(s), "--metric", "magnitude", "--out", Path.Combine(s.Dir, "out")];
        args = [.. args.Select(a => a == (which == "calib" ? s.Calib : s.Wiki) ? "/dev/zero" : a)];
        CliRunner.UserError("/dev/zero is a character device, not a regular file", args);
        CliRunner.UserError("/dev/zero is a character device", StatsArgs(s).Select(a => a == s.Calib ? "/dev/zero" : a).ToArray());
        CliRunner.UserError("/dev/zero is a character device", "eval", "--model", s.Model, "--dataset", "/dev/zero");
        CliRunner.UserError("/dev/zero is a character device", "train", "--out", Path.Combine(s.Dir, "t"), "--config", "micro", "--steps", "1", "--no-eval", "--data", "/dev/zero");
    }

    [Fact]
    public void FifoAndFolderAsInputFilesAreRefused()
    {
        var s = Make();
        string fifo = Path.Combine(s.Dir, "pipe");
        var p = System.Diagnostics.Process.Start("mkfifo", [fifo])!;
        p.WaitForExit();
        CliRunner.UserError("is a named pipe (FIFO)", [.. StatsArgs(s).Select(a => a == s.Calib ? fifo : a)]);
        CliRunner.UserError("--metrics " + s.Dir + " is a folder, not a file", ["score", .. Common(s), "--metrics", s.Dir]);
        CliRunner.UserError("is a file, not a folder", "eval", "--model", s.Calib, "--dataset", s.Wiki);
    }

    [Fact]
    public void CheckpointFileThatIsADeviceIsRefused()
    {
        var s = Make();
        string tok = Path.Combine(s.Model, "tokenizer_config.json");
        File.Delete(tok);
        File.CreateSymbolicLink(tok, "/dev/zero");
        CliRunner.UserError("is a character device", "eval", "--model", s.Model, "--dataset", s.Wiki, "--seqlen", "32", "--windows", "1");
        CliRunner.UserError("is a character device", [.. SearchArgs(s, TestCheckpoints.TempDir("run"))]);
    }

    [Fact]
    public void TextInputOverTheBoundIsRefusedNamingTheBound()
    {
        var s = Make();
        long old = TextData.MaxTextBytes;
        TextData.MaxTextBytes = 1024;
        try
        {
            CliRunner.UserError("more than 1,024 bytes of text", StatsArgs(s));
            string gz = Path.Combine(s.Dir, "calib.txt.gz");
            using (var f = File.Create(gz))
            using (var z = new System.IO.Compression.GZipStream(f, System.IO.Compression.CompressionLevel.Fastest))
                z.Write(new byte[1 << 20]);
            CliRunner.UserError("of text after decompression", [.. StatsArgs(s).Select(a => a == s.Calib ? gz : a)]);
        }
        finally { TextData.MaxTextBytes = old; }
    }

    // ---- fresh bad inputs found while auditing every verb ----

    [Fact]
    public void EmptyPathsAreRefusedByFlagNotAsInternalFailures()
    {
        var s = Make();
        CliRunner.UserError("--out is empty", ["prune", "--eval", .. Common(s), "--metric", "magnitude", "--out", ""]);
        CliRunner.UserError("--out is empty", "train", "--out", "", "--config", "micro", "--steps", "1", "--no-eval", "--data", s.Calib);
        CliRunner.UserError("--model is empty", "eval", "--model", "", "--dataset", s.Wiki);
        CliRunner.UserError("--tasks is empty", "zeroshot", "--model", s.Model, "--tasks", "arc_easy=", "--limit", "1");
    }

    [Fact]
    public void BinaryMetricLibraryIsRefusedBeforeWork()
    {
        var s = Make();
        string err = CliRunner.UserError("is not a text file", ["score", .. Common(s), "--metrics", Path.Combine(s.Model, "model.safetensors")]);
        Assert.DoesNotContain("memory", err);
        string bad = Path.Combine(s.Dir, "lib.txt");
        File.WriteAllBytes(bad, [(byte)'w', (byte)'a', 0xC3, (byte)'\n']);
        CliRunner.UserError("invalid UTF-8 at byte 2", ["score", .. Common(s), "--metrics", bad]);
    }

    [Fact]
    public void CsvThatIsAHardLinkToTheWeightsIsRefused()
    {
        var s = Make();
        string weights = Path.Combine(s.Model, "model.safetensors");
        string before = Sha(weights);
        string csv = Path.Combine(s.Dir, "out.csv");
        HardLink(weights, csv);
        CliRunner.UserError("the same file", ["score", .. Common(s), "--metrics", Metrics(s), "--csv", csv]);
        Assert.Equal(before, Sha(weights));
    }

    [Fact]
    public void PruneOutThroughASymlinkToAnotherCheckpointIsRefused()
    {
        var s = Make();
        string other = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 9);
        var before = Files(other);
        string link = Path.Combine(s.Dir, "link");
        Directory.CreateSymbolicLink(link, other);
        CliRunner.UserError("already holds checkpoint files", ["prune", "--eval", .. Common(s), "--metric", "magnitude", "--out", link]);
        Assert.Equal(before, Files(other));
    }

    [Fact]
    public void TrainOutHoldingOnlyATokenizerConfigIsRefused()
    {
        var s = Make();
        string outDir = TestCheckpoints.TempDir("train");
        string tc = Path.Combine(outDir, "tokenizer_config.json");
        File.WriteAllText(tc, "{\"mine\": true}");
        CliRunner.UserError("already holds a model", "train", "--out", outDir, "--config", "micro", "--steps", "1", "--no-eval", "--data", s.Calib);
        Assert.Equal("{\"mine\": true}", File.ReadAllText(tc));
    }
}
