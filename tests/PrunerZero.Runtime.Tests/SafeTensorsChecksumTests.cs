using PrunerZero.Runtime;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

/// <summary>A checksumming safetensors writer stores SHA-256 of every data byte in __metadata__; any changed, missing or extra byte is found.</summary>
public class SafeTensorsChecksumTests : TorchGuarded
{
    static string WriteEntry(bool checksum)
    {
        string path = Path.Combine(TestCheckpoints.TempDir("checksum"), "entry.safetensors");
        using var scope = NewDisposeScope();
        var a = tensor(Enumerable.Range(0, 1000).Select(i => (float)i).ToArray(), new long[] { 10, 100 });
        var b = ones(new long[] { 7 }, ScalarType.Float32);
        using var w = new SafeTensorsWriter(path, [new TensorSpec("a", "F32", a.shape), new TensorSpec("b", "F32", b.shape)], null, checksum);
        w.Write("b", b);   // any order
        w.Write("a", a);
        w.Complete();
        return path;
    }

    [Fact]
    public void ChecksumCoversEveryDataByte()
    {
        string path = WriteEntry(checksum: true);
        var (_, dataStart, meta) = SafeTensors.ReadHeaderAndMetadata(path);
        Assert.Equal(SafeTensors.DataSha256(path, dataStart), meta[SafeTensors.ChecksumKey]);
        Assert.Null(SafeTensors.ChecksumProblem(path));
        var good = File.ReadAllBytes(path);
        for (long at = dataStart; at < good.Length; at += 997)
        {
            var bad = (byte[])good.Clone();
            bad[at] ^= 0x01;
            File.WriteAllBytes(path, bad);
            Assert.Contains("mismatch", SafeTensors.ChecksumProblem(path));
        }
        File.WriteAllBytes(path, good[..^4]);
        Assert.NotNull(SafeTensors.ChecksumProblem(path));
        File.WriteAllBytes(path, [.. good, 0]);
        Assert.NotNull(SafeTensors.ChecksumProblem(path));
        File.WriteAllBytes(path, good[..5]);
        Assert.NotNull(SafeTensors.ChecksumProblem(path));
    }

    [Fact]
    public void AnEntryWithoutChecksumIsNotTrusted()
    {
        string path = WriteEntry(checksum: false);
        Assert.Contains(SafeTensors.ChecksumKey, SafeTensors.ChecksumProblem(path));
    }
}
