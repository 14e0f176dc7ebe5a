"""The markdown a pull-request comment gets from `gitmoor diff -o markdown`: its
table counts, its collapsible blocks, and text that cannot break out of them."""

from __future__ import annotations

from gitmoor.cli.diff_report import AppReport, Change, ObjectChange, markdown

DIFF = "--- live/ConfigMap a\n+++ predicted/ConfigMap a\n@@ -1 +1 @@\n-x: 1\n+x: 2\n"


def test_table_counts_each_kind_of_change_per_app() -> None:
    web = AppReport(
        "web",
        "0123456789ab",
        (
            ObjectChange("ConfigMap ns/a", Change.CHANGED, "", DIFF),
            ObjectChange("ConfigMap ns/b", Change.ADDED, "", DIFF),
            ObjectChange("ConfigMap ns/c", Change.ADDED, "", DIFF),
            ObjectChange("Secret ns/d", Change.REMOVED, "", DIFF),
        ),
    )
    quiet = AppReport("quiet", "0123456789ab")
    broken = AppReport("broken", "", error="render failed: kustomization.yaml line 3")
    text = markdown([web, quiet, broken])
    assert "| `web` | 0123456789ab | 2 | 1 | 1 |" in text
    assert "| `quiet` | 0123456789ab | 0 | 0 | 0 |" in text
    assert "| `broken` |  | error | error | error |" in text
    assert "<details><summary>Secret ns/d (removed)</summary>" in text
    assert text.count("<details>") == text.count("</details>") == 4
    assert "No differences." in text.split("### quiet", 1)[1]
    assert "**error:** render failed" in text


def test_a_diff_quoting_a_fence_cannot_close_its_block() -> None:
    quoting = DIFF + "+doc: |\n+  ```diff\n+  ````\n"
    text = markdown(
        [AppReport("a", "r", (ObjectChange("ConfigMap ns/a", Change.CHANGED, "", quoting),))]
    )
    assert "`````diff\n" in text
    body = text.split("`````diff\n", 1)[1].split("\n`````\n", 1)[0]
    assert body == quoting.rstrip("\n")


def test_names_and_messages_are_escaped() -> None:
    change = ObjectChange("ConfigMap ns/<b>x</b>", Change.CHANGED, "a | b <i>", "")
    text = markdown([AppReport("a|b", "r", (change,))])
    assert "<summary>ConfigMap ns/&lt;b&gt;x&lt;/b&gt; (changed)</summary>" in text
    assert "a \\| b &lt;i&gt;" in text
    assert "| `a\\|b` |" in text
