"""Conversations end to end: the oasst / sharegpt / messages readers on the shipped samples, the conversation
rules and dedup, a chat build with its card, report and export, and chat LoRA training with the loss on the
assistant turns only."""

import json
import shutil
from collections import Counter

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import ROOT, SAMPLES, cpu_train_spec, read_all
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pipeline.clean.filters import FilterContext
from pipeline.clean.filters.conversation import check as conversation_check
from pipeline.dedup.exact import dedup_key
from pipeline.records import chat_row, lineage

OASST = SAMPLES / "oasst"
SHAREGPT = SAMPLES / "sharegpt"
FLAT = OASST / "oasst1_validation_en.messages.sample.jsonl"
TREES = OASST / "oasst_export_en_100.trees.sample.jsonl"
EDITOR = OASST / "oasst2_135k_ja.edited.sample.json"


def kept(rows):
    return [r for r in rows if "messages" in r]


def reasons(rows):
    return Counter(r["reason"] for r in rows if "reason" in r)


def first_words(row):
    return [(m["role"], m["content"][:24]) for m in row["messages"]]


def flat_messages():
    return [json.loads(x) for x in FLAT.read_text(encoding="utf-8").splitlines()]


# --- oasst ------------------------------------------------------------------------------------------------

CHATGPT_TREE = "e0cf4fa2-e944-44fb-b502-11f155062092"


def test_oasst_flat_best_branch_follows_the_lowest_rank(tmp_path):
    rows = read_all("oasst", FLAT)
    convs = [r for r in kept(rows) if json.loads(r["meta"])["message_tree_id"] == CHATGPT_TREE]
    assert len(convs) == 1
    assert first_words(convs[0]) == [
        ("user", "What do you think about "),
        ("assistant", "As an open source altern"),
        ("user", "What are your thoughts o"),
        ("assistant", "As a large language mode"),
    ]
    meta = json.loads(convs[0]["meta"])
    assert [m[:8] for m in meta["message_ids"]] == ["e0cf4fa2", "7d05acb7", "384ad8e0", "c8dc7c16"]
    assert meta["langs"] == ["en"] * 4 and convs[0]["source_index"] == 3  # the path's last message
    assert len(kept(rows)) == 16  # one per tree
    assert reasons(rows) == {
        "branch_not_taken": 93, "in_dropped_subtree": 8, "review_failed": 3, "deleted": 2, "unanswered": 2
    }


def test_oasst_flat_every_message_is_in_exactly_one_row():
    rows = read_all("oasst", FLAT)
    seen = Counter()
    for r in rows:
        if "messages" in r:
            seen.update(json.loads(r["meta"])["message_ids"])
        else:
            seen[json.loads(r["record"])["message_id"]] += 1
    assert seen == Counter(m["message_id"] for m in flat_messages())  # 152 messages, each once


def test_oasst_all_branches_gives_one_conversation_per_answered_leaf():
    rows = read_all("oasst", FLAT, branches="all")
    tree = [r for r in rows if r["source_index"] < 12]  # the ChatGPT tree is the file's first 12 lines
    paths = sorted([m[:8] for m in json.loads(r["meta"])["message_ids"]] for r in kept(tree))
    assert paths == [
        ["e0cf4fa2", "3880d924"],
        ["e0cf4fa2", "779035e6", "73a41883", "48ac2156"],
        ["e0cf4fa2", "779035e6", "73a41883", "db6b57cb"],
        ["e0cf4fa2", "779035e6", "73a41883", "f06f4f73"],  # its unanswered follow-up dropped
        ["e0cf4fa2", "7d05acb7", "384ad8e0", "63b876e6"],
        ["e0cf4fa2", "7d05acb7", "384ad8e0", "c8dc7c16"],
    ]
    assert [(r["reason"], r["source_index"]) for r in tree if "reason" in r] == [("unanswered", 11)]
    assert len({r["id"] for r in rows}) == len(rows)


def test_oasst_nested_trees_paths_share_the_line_with_distinct_ids():
    rows = read_all("oasst", TREES, branches="all")
    line0 = [r for r in rows if r["source_index"] == 0]
    assert len({r["id"] for r in rows}) == len(rows)
    # one prompt, three ranked answers: three conversations, all on line 0
    assert [[m["content"][:30] for m in r["messages"]] for r in line0] == [
        ["How can I find the best 401k p", a]
        for a in ("The first step is to research ", "The first step is to determine", "The best way to find a 401k pl")
    ]
    best = read_all("oasst", TREES)
    assert len(kept(best)) == 15 and reasons(best) == {"branch_not_taken": 37, "unanswered": 6}
    # a dropped branch keeps its whole subtree as the record
    sub = json.loads(next(r["record"] for r in best if r.get("reason") == "branch_not_taken"))
    assert sub["role"] == "assistant" and "replies" in sub


def test_oasst_japanese_editor_threads_use_the_audited_text():
    rows = read_all("oasst", EDITOR)
    convs = kept(rows)
    assert len(convs) == 7 and reasons(rows) == {"not_ready": 4, "branch_not_taken": 1}
    assert first_words(convs[0]) == [
        ("user", "コモドール64について何か情報をお持ちですか？"),
        ("assistant", "もちろんです。コモドール64は、1982年8月に"),
    ]
    raw = json.loads(EDITOR.read_text(encoding="utf-8"))
    mid = json.loads(convs[0]["meta"])["message_ids"][1]
    assert convs[0]["messages"][1]["content"] == raw[mid]["text_ja_audited"]
    english = read_all("oasst", EDITOR, text_field="text")
    assert kept(english)[0]["messages"][0]["content"] == "Do you have any information about the Commodore 64?"


# --- sharegpt and messages --------------------------------------------------------------------------------


def test_sharegpt_system_key_and_tool_turns():
    rows = read_all("sharegpt", SHAREGPT / "fastchat_dummy_conversation_with_system.sample.json")
    assert [m["role"] for m in rows[0]["messages"]][:3] == ["system", "user", "assistant"]
    assert json.loads(rows[0]["meta"]) == {"id": "identity_0"}
    tools = SHAREGPT / "llamafactory_glaive_toolcall_en_demo.sample.json"
    rejected = read_all("sharegpt", tools)
    assert reasons(rejected) == {"unknown_turn": 6}
    detail = next(r["detail"] for r in rejected if "reason" in r)
    assert detail.startswith("turn 3: from 'function_call' (known: assistant, bard,")
    keep = read_all("sharegpt", tools, other_turns="keep")
    assert len(kept(keep)) == 15
    with_tools = next(r for r in keep if r["messages"][0]["content"].startswith("Hi, I would like to know the latest"))
    meta = json.loads(with_tools["meta"])
    assert meta["turn_types"][:4] == ["human", "function_call", "observation", "gpt"]
    assert [m["role"] for m in with_tools["messages"]][:4] == ["user", "assistant", "user", "assistant"]


def test_messages_reader_rejects_unknown_roles_and_image_parts(tmp_path):
    f = tmp_path / "m.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "weight": 0}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "{}"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]},
        {"conversation": []},
    ]
    f.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    rows = read_all("messages", f)
    assert [r.get("reason") for r in rows] == [None, "unknown_turn", "unsupported_content", None, "missing_field"]
    assert json.loads(rows[0]["meta"]) == {"turns": {"weight": [None, 0]}}
    assert rows[3]["messages"] == [{"role": "user", "content": "a\nb"}]
    assert rows[1]["detail"] == "turn 1: role 'tool' (known: assistant, system, user)"
    assert rows[4]["record"] == json.dumps(lines[4])  # the line, verbatim


# --- plays ------------------------------------------------------------------------------------------------

SCRIPTS = SAMPLES / "scripts"
BURANKO = SCRIPTS / "kishida_buranko.52086_ruby_45536.sjis.txt"  # Shift_JIS, CRLF, ruby, Aozora notes
ROMEO = SCRIPTS / "shakespeare_romeo_and_juliet.act2_sc1-2.pg1513.txt"


def test_script_aozora_shift_jis_with_ruby_gives_speakers_and_clean_turns():
    from pipeline.sources._streams import decode_text
    from pipeline.text.play import parse_play

    play = parse_play(decode_text(BURANKO.read_bytes(), "cp932"))
    speakers = Counter(u.speaker for sc in play.scenes for u in sc.utterances)
    assert speakers == {"夫": 56, "妻": 56, "同僚": 11, "夫の声": 6, "声": 2, "妻の声": 1, "同僚の声": 1}
    assert (play.title, play.author, play.credits.splitlines()[0]) == ("ぶらんこ（一幕）", "岸田國士", "底本：「岸田國士全集1」岩波書店")
    rows = read_all("script", BURANKO, assistant=["夫"])  # the husband's off-stage voice (夫の声) is the user here
    assert first_words(rows[0]) == [(r, t[:24]) for r, t in [
        ("user", "妻: あなた、さ、もう起きて下さい。"),
        ("assistant", "夫: 起きてるよ。一体何時だい。"),
        ("user", "妻: 毎朝、わかつてるぢやありませんか。"),
        ("assistant", "夫: そんな時間か。"),
        ("user", "妻: いやね、どんな時間だと思つてらつしやるの。"),
        ("assistant", "夫: さうか。カマキリは、まだ来ないだらう。"),  # its （跳ね起きるらしく） and （間） taken out
        ("user", "妻: およしなさいよ、そんな大きな声で…………。"),
        ("assistant", "夫: 昨夜はね、素敵もなく面白い夢を見たよ。"),
    ]]
    convs = kept(rows)
    # so the play's last stretch of off-stage voices is one user turn nothing answers
    [(at, reason, record)] = [(r["source_index"], r["reason"], r["record"]) for r in rows if "reason" in r]
    assert (at, reason, record.split("\n")[0]) == (13, "unanswered", "同僚: 実はね、君、弱つたことになつたんだ。")
    voices = read_all("script", BURANKO, assistant=["夫", "夫の声"])
    assert len(voices) == 15 and all("messages" in r for r in voices)
    everything = "\n".join(m["content"] for r in convs for m in r["messages"])
    assert not any(c in everything for c in "《》｜［＃（") and "底本" not in everything
    # the hummed tune under a continuation block is the husband's, not five speakers called タララ
    tune = next(m["content"] for r in convs for m in r["messages"] if "タララ" in m["content"])
    assert tune.startswith("夫: タラ　ラ　ラ　ラ　ラ　ラア\nタララ　タララ　タララア\n")
    meta = json.loads(rows[0]["meta"])
    assert (meta["title"], meta["line"], meta["speakers"][:2]) == ("ぶらんこ（一幕）", 22, [["妻"], ["夫"]])
    assert len(convs) == 13 and all(len(r["messages"]) <= 8 for r in convs)


def test_script_aozora_utf8_speaker_counts_and_speech_after_a_direction():
    from pipeline.text.play import parse_play

    play = parse_play((SCRIPTS / "kikuchi_okujou_no_kyoujin.494_ruby_19911.utf8.txt").read_text(encoding="utf-8"))
    speakers = Counter(u.speaker for sc in play.scenes for u in sc.utterances)
    assert speakers == {"義助": 44, "巫女": 18, "吉治": 17, "末次郎": 17, "義太郎": 14, "藤作": 13, "およし": 6, "皆": 2}
    # a line in a directions block that goes on after its direction is the speaker's: 義助 goes on
    u = next(u for sc in play.scenes for u in sc.utterances if "おとなしゅう降りるんだぜ" in u.text)
    assert (u.speaker, u.text.splitlines()[-1], u.directions[-1]) == ("義助", "さあ義！　おとなしゅう降りるんだぜ。", "（藤作を見送った後）")


def test_script_gutenberg_scenes_windows_and_directions_as_system():
    rows = read_all("script", ROMEO, assistant=["JULIET"], window=4, stage_directions="system")
    balcony = [r for r in kept(rows) if json.loads(r["meta"])["scene"] == "SCENE II. Capulet’s Garden."]
    first = balcony[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant", "user", "assistant"]
    assert first[0]["content"].startswith("SCENE II. Capulet’s Garden.\n")
    assert [m["content"].split("\n")[0] for m in first[1:]] == [
        "ROMEO: He jests at scars that never felt a wound.", "JULIET: Ay me.", "ROMEO: She speaks.",
        "JULIET: O Romeo, Romeo, wherefore art thou Romeo?",
    ]
    convs = kept(rows)
    speakers = Counter(n for r in convs for t in json.loads(r["meta"])["speakers"] for n in t)
    assert all(r["messages"][-1]["role"] == "assistant" for r in convs if "assistant" in str(r["messages"]))
    # the balcony scene ends on Romeo, with no answer: its own reject
    [last] = [r for r in rows if "reason" in r]
    assert (last["reason"], last["record"].split("\n")[0]) == ("unanswered", "ROMEO: Sleep dwell upon thine eyes, peace in thy breast.")
    assert sum(speakers.values()) == 65 and speakers["JULIET"] == 27


def test_script_patterns_kagi_colon_and_an_own_regex(tmp_path):
    kagi = tmp_path / "kagi.txt"
    kagi.write_text("GM「ようこそ、冒険者たち」\nアリス「ここはどこ？」\nGM「古い塔の前です」\nアリス「入ります」\n", encoding="utf-8")
    row, last = read_all("script", kagi, assistant=["GM"])
    assert row["messages"] == [
        {"role": "system", "content": "GM: ようこそ、冒険者たち"},  # the GM opens: context for the first turn
        {"role": "user", "content": "アリス: ここはどこ？"},
        {"role": "assistant", "content": "GM: 古い塔の前です"},
    ]
    assert (last["reason"], last["record"], last["source_index"]) == ("unanswered", "アリス: 入ります", 1)
    replay = tmp_path / "replay.txt"
    replay.write_text("[GM] 扉が開く。\n[ボブ] 中を覗く。\n[GM] 暗い。\n", encoding="utf-8")
    [row] = read_all("script", replay, assistant=["GM"], speaker_pattern=r"^\[(?P<name>[^\]]+)\] (?P<line>.+)$")
    assert [m["content"] for m in row["messages"]] == ["GM: 扉が開く。", "ボブ: 中を覗く。", "GM: 暗い。"]
    none = tmp_path / "prose.txt"
    none.write_text("ただの文章です。\n台詞はありません。\n", encoding="utf-8")
    assert [(r["reason"], r["record"]) for r in read_all("script", none)] == [("no_speech", "ただの文章です。\n台詞はありません。\n")]


# --- persona ----------------------------------------------------------------------------------------------

TWEETS = SAMPLES / "tweets_archive" / "data" / "tweets.js"


def provenance():
    return [json.loads(x) for x in (SAMPLES / "tweets_archive" / "tweets.provenance.jsonl").read_text().splitlines()]


def test_persona_rows_threads_and_retweets_each_post_once():
    rows = read_all("persona", TWEETS)
    kinds = {p["id_str"]: p["kind"] for p in provenance()}
    assert Counter(r.get("reason") or ("chat" if "messages" in r else "text") for r in rows) == {
        "text": 30, "chat": 3, "retweet": 5
    }
    seen = Counter()
    for r in rows:
        if "reason" in r:
            seen[json.loads(r["record"])["tweet"]["id_str"]] += 1
            assert kinds[json.loads(r["record"])["tweet"]["id_str"]] == "retweet"
        else:
            seen.update(json.loads(r["meta"])["post_ids"])
    assert seen == Counter(list(kinds)) and len(kinds) == 52  # 52 posts, each in exactly one row
    threads = [r for r in rows if "messages" in r]
    assert sorted(len(json.loads(r["meta"])["post_ids"]) for r in threads) == [2, 7, 8]
    for r in threads:  # a thread: its root asks, the self-replies answer, in reply order
        ids = json.loads(r["meta"])["post_ids"]
        assert kinds[ids[0]] == "thread-root" and {kinds[i] for i in ids[1:]} == {"thread"}
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert ids[1:] == sorted(ids[1:])  # snowflake ids grow with time
    other = next(r for r in rows if "text" in r and "reply_to" in r["meta"])
    assert other["text"] == "古典の作者の幸福なる所以は兎に角彼等の死んでいることである。"  # no leading @mention
    assert not any("RT @" in (r.get("text") or "") for r in rows)


def test_persona_masks_other_handles_and_links_but_not_the_owner(tmp_path):
    (tmp_path / "account.js").write_text(
        'window.YTD.account.part0 = [ { "account" : { "username" : "me_here", "accountId" : "1" } } ]'
    )
    tweets = [{"tweet": {"id_str": "10", "full_text": "@me_here と @someone_else に https://t.co/abc を送った",
                         "display_text_range": ["0", "40"]}},
              {"tweet": {"id_str": "11", "full_text": "RT @someone_else: hello"}},
              {"tweet": {"id_str": "12"}}]
    (tmp_path / "tweets.js").write_text("window.YTD.tweets.part0 = " + json.dumps(tweets, ensure_ascii=False))
    rows = read_all("persona", tmp_path / "tweets.js")
    assert rows[0]["text"] == "@me_here と @<HANDLE> に <URL> を送った"
    assert [r.get("reason") for r in rows] == [None, "retweet", "missing_field"]
    only_threads = read_all("persona", tmp_path / "tweets.js", text_rows=False)
    assert [r.get("reason") for r in only_threads] == ["not_a_thread", "retweet", "missing_field"]
    assert json.loads(only_threads[0]["record"]) == tweets[0]  # the post as it was


def test_persona_forks_cycles_and_self_replies_lose_no_post(tmp_path):
    def post(i, parent=None):
        return {"tweet": {"id_str": str(i), "full_text": f"投稿{i}", **({"in_reply_to_status_id_str": str(parent)} if parent else {})}}

    tweets = [post(1), post(2, 1), post(3, 1), post(4, 3), post(5, 6), post(6, 5), post(7, 7), post(8, 99)]
    (tmp_path / "tweets.js").write_text("window.YTD.tweets.part0 = " + json.dumps(tweets, ensure_ascii=False))
    rows = read_all("persona", tmp_path / "tweets.js")
    threads = sorted(json.loads(r["meta"])["post_ids"] for r in rows)
    # 1 -> 2 (the earliest reply), the fork 3 -> 4, the cycle 5 <-> 6 from its first post, 7 replying to itself,
    # 8 replying to a post not in the archive
    assert threads == [["1", "2"], ["3", "4"], ["5", "6"], ["7"], ["8"]]
    assert sum(len(t) for t in threads) == len(tweets)


def test_persona_reads_a_mastodon_outbox(tmp_path):
    me = "https://social.example/users/me/statuses/"
    mention = '<span class="h-card"><a href="https://other.example/@alice" class="u-url mention">@<span>alice</span></a></span>'
    items = [
        {"type": "Create", "object": {"id": me + "1", "inReplyTo": None, "published": "2023-01-01T00:00:00Z",
                                      "content": f"<p>{mention} 今日は晴れ&amp;暖かい。</p><p>散歩に行く。</p>"}},
        {"type": "Announce", "id": me + "2/activity", "object": "https://other.example/notes/9"},
        {"type": "Create", "object": {"id": me + "3", "inReplyTo": me + "1", "content": "<p>帰ってきた。</p>"}},
        {"type": "Create", "object": {"id": me + "4", "inReplyTo": None, "content": "<p>別の話。</p>"}},
    ]
    (tmp_path / "outbox.json").write_text(json.dumps({"orderedItems": items}, ensure_ascii=False), encoding="utf-8")
    rows = read_all("persona", tmp_path / "outbox.json")
    assert [r.get("reason") or ("chat" if "messages" in r else "text") for r in rows] == ["chat", "retweet", "text"]
    assert rows[0]["messages"] == [
        {"role": "user", "content": "@<HANDLE> 今日は晴れ&暖かい。\n散歩に行く。"},
        {"role": "assistant", "content": "帰ってきた。"},
    ]
    assert rows[2]["text"] == "別の話。"


# --- conversation rules and dedup -------------------------------------------------------------------------


def conv(*turns):
    return chat_row(lineage("s", "f", 0, "mit"), [{"role": r, "content": c} for r, c in turns])


@pytest.mark.parametrize(
    "turns, want",
    [
        ((("system", "s"), ("user", "q"), ("assistant", "a")), None),
        ((("user", "q"), ("assistant", "a"), ("user", "q2")), None),
        ((("assistant", "a"), ("user", "q")), ("starts_with_assistant", "turn 0: the first turn is the assistant's")),
        ((("user", "q"), ("user", "q2"), ("assistant", "a")), ("not_alternating", "turns 0-1: two user turns in a row")),
        ((("user", "q"), ("system", "s")), ("misplaced_system", "turn 1: a system turn after the first")),
        ((("system", "s"), ("user", "q")), ("no_assistant_turn", "1 user turn(s), no answer")),
        ((("user", "q"), ("tool", "t")), ("bad_role", "turn 1: role 'tool'")),
    ],
)
def test_conversation_rule(turns, want):
    assert conversation_check(conv(*turns), FilterContext()) == want


def test_exact_dedup_key_is_the_whole_conversation_with_roles():
    a = conv(("user", "Hello  there"), ("assistant", "Hi"))
    assert dedup_key(a) == dedup_key(conv(("user", "hello there"), ("assistant", "hi")))
    assert dedup_key(a) != dedup_key(conv(("user", "Hello there"), ("assistant", "Hi"), ("user", "more?"), ("assistant", "no")))
    assert dedup_key(a) != dedup_key(conv(("assistant", "Hello there"), ("user", "Hi")))


# --- a chat build: tables, card, report, export -----------------------------------------------------------


@pytest.fixture(scope="module")
def chat_build(tmp_path_factory, prefect_harness):
    from flows.build import build_flow

    tmp = tmp_path_factory.mktemp("chat")
    shutil.copytree(SAMPLES / "oasst", tmp / "samples" / "oasst")
    shutil.copytree(SAMPLES / "sharegpt", tmp / "samples" / "sharegpt")
    shutil.copytree(SAMPLES / "scripts", tmp / "samples" / "scripts")
    shutil.copytree(SAMPLES / "tweets_archive", tmp / "samples" / "tweets_archive")
    (tmp / "recipes").mkdir()
    data = yaml.safe_load((ROOT / "data" / "recipes" / "chat.yaml").read_text(encoding="utf-8"))
    pii = tmp / "samples" / "pii.jsonl"  # PII inside a turn is masked, in the rows and in the rejects
    pii.write_text(
        json.dumps({"messages": [{"role": "user", "content": "メールは taro@example.com です。返事をください。"},
                                 {"role": "assistant", "content": "わかりました。ご連絡ありがとうございます。"}]},
                   ensure_ascii=False) + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "連絡先 taro@example.com"}]}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    data["sources"].append({"name": "pii", "kind": "messages", "path": "../samples/pii.jsonl", "license": "mit"})
    recipe = tmp / "recipes" / "chat.yaml"
    recipe.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    build_flow(str(recipe), str(tmp / "out"))
    return tmp / "out"


def table(build, name):
    m = json.loads((build / "manifest.json").read_text())
    return [r for s in m["shards"] if s["table"] == name for r in pq.read_table(build / s["path"]).to_pylist()]


def test_chat_build_accounts_every_record_and_loads_as_a_config(chat_build, tmp_path):
    import datasets

    m = json.loads((chat_build / "manifest.json").read_text())
    counts = {k: (v["read"], v["kept"]) for k, v in m["counts"].items()}
    assert counts == {
        "oasst_ja": (12, 7), "oasst_en": (124, 16), "oasst_en_trees": (98, 70), "fastchat": (56, 20),
        "glaive_tools": (15, 14), "openai_messages": (3, 3), "plays_ja": (45, 45), "okujou_no_kyoujin": (4, 4),
        "romeo_and_juliet": (17, 14), "persona": (38, 33), "pii": (2, 1),
    }
    assert {s["table"] for s in m["shards"]} == {"chat", "text", "rejects"}
    ds = datasets.load_dataset(str(chat_build), "chat", cache_dir=str(tmp_path))  # its cache: keyed by folder name
    assert ds["train"].num_rows + ds["validation"].num_rows == 197
    assert str(ds["train"].features["messages"]) == "List({'role': Value('string'), 'content': Value('string')})"
    card = (chat_build / "README.md").read_text()
    assert "config_name: chat" in card and "path: chat/train-*.parquet" in card
    rows = table(chat_build, "chat")
    pii = next(r for r in rows if r["source"] == "pii")
    assert pii["messages"][0]["content"] == "メールは <EMAIL> です。返事をください。"
    rejects = table(chat_build, "rejects")
    bad = next(r for r in rejects if r["source"] == "pii")
    assert (bad["reason"], "taro@" in bad["record"], "<EMAIL>" in bad["record"]) == ("no_assistant_turn", False, True)
    near = [r for r in rejects if r["reason"] == "duplicate_near" and r["source"] == "fastchat"]
    assert len(near) == 36  # FastChat's identity answers, repeated across ids


def test_chat_report_shows_turns_and_roles(chat_build):
    from pipeline.sink.report import report_data

    conv = {r["source"]: r for r in report_data(chat_build)["conversations"]}
    assert conv["openai_messages"] == {
        "source": "openai_messages", "conversations": 3, "turns min": 2, "turns median": 3, "turns p90": 9,
        "turns max": 9, "system": 2, "user": 6, "assistant": 6,
    }
    assert "Conversations: turns per conversation and turns per role" in (chat_build / "report.html").read_text()


def test_sharegpt_and_messages_round_trip_through_export(chat_build, tmp_path):
    from pipeline.sink.export import export

    export(chat_build, "sharegpt", tmp_path / "s.jsonl")
    out = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    src = json.loads((SHAREGPT / "fastchat_dummy_conversation_with_system.sample.json").read_text())
    src += json.loads((SHAREGPT / "llamafactory_glaive_toolcall_en_demo.sample.json").read_text())
    by_conv = {json.dumps([r["conversations"], r.get("system")]): r for r in src}
    kept_rows = {r["id"]: r for r in table(chat_build, "chat") if r["source"] in ("fastchat", "glaive_tools")}
    back = [o for o in out if o["id"] in kept_rows]
    assert len(back) == 34
    for o in back:  # what the source file said, turn names, system and tools included
        s = by_conv.get(json.dumps([o["conversations"], o.get("system")]))
        if s is None:  # a FastChat row of the file without a system key
            continue
        assert {k: o[k] for k in s if k != "id"} == {k: v for k, v in s.items() if k != "id"}
    # 16 of 20 unchanged; cleaning changed four glaive rows: two e-mail addresses masked, two spaces before a
    # line break normalised away
    assert sum(json.dumps([o["conversations"], o.get("system")]) in by_conv for o in back) == 16
    export(chat_build, "messages", tmp_path / "m.jsonl")
    msgs = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    cookbook = [json.loads(x) for x in (SHAREGPT / "openai_cookbook_toy_chat_fine_tuning.sample.jsonl").read_text().splitlines()]
    assert sorted(json.dumps(m["messages"]) for m in msgs if m["source"] == "openai_messages") == sorted(
        json.dumps(c["messages"]) for c in cookbook
    )
    export(chat_build, "llama-factory", tmp_path / "lf")
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["chat_sharegpt_train"]["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    assert info["chat_sharegpt_train"]["tags"]["function_tag"] == "function_call"
    assert info["chat_alpaca_train"]["columns"]["history"] == "history"
    export(chat_build, "messages", tmp_path / "m2.jsonl")
    assert (tmp_path / "m2.jsonl").read_bytes() == (tmp_path / "m.jsonl").read_bytes()


# --- chat training ----------------------------------------------------------------------------------------

DIALOGUE = [
    {"role": "system", "content": "あなたは親切な案内係です。"},
    {"role": "user", "content": "駅はどこですか？"},
    {"role": "assistant", "content": "まっすぐ行って右です。"},
    {"role": "user", "content": "ありがとう。"},
    {"role": "assistant", "content": "どういたしまして。"},
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def learned(tok, ex):
    """The text of the tokens in the loss, and of those not, each in order."""
    from pipeline.train.data import IGNORE

    assert len(ex.input_ids) == len(ex.labels)
    assert all(lab in (IGNORE, i) for i, lab in zip(ex.input_ids, ex.labels, strict=True))  # a label is its token or nothing
    on = [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    off = [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab == IGNORE]
    return tok.decode(on), tok.decode(off)


def test_chat_loss_mask_is_exactly_the_assistant_turns(tiny):
    from transformers import AutoTokenizer

    from pipeline.train.data import IGNORE, encode_chat

    tok = AutoTokenizer.from_pretrained(tiny["gpt_neox"])
    ex = encode_chat(tok, "chat-ja", DIALOGUE, 1024)
    assert learned(tok, ex) == (
        "まっすぐ行って右です。\nどういたしまして。\n<|endoftext|>",
        "あなたは親切な案内係です。\n\nユーザー: 駅はどこですか？\nアシスタント: ユーザー: ありがとう。\nアシスタント: ",
    )
    # token by token: the first answer starts right after the prompt's tokens
    prompt = tok("あなたは親切な案内係です。\n\nユーザー: 駅はどこですか？\nアシスタント: ", add_special_tokens=False)["input_ids"]
    answer = tok("まっすぐ行って右です。\n", add_special_tokens=False)["input_ids"]
    assert ex.labels[: len(prompt)] == [IGNORE] * len(prompt)
    assert ex.labels[len(prompt) : len(prompt) + len(answer)] == answer
    assert ex.labels[len(prompt) + len(answer)] == IGNORE
    rwkv = encode_chat(tok, "rwkv", DIALOGUE[1:3], 1024)
    assert learned(tok, rwkv) == ("まっすぐ行って右です。\n\n<|endoftext|>", "User: 駅はどこですか？\n\nAssistant: ")


def test_chat_mask_with_the_tokenizers_own_template(tiny):
    from transformers import AutoTokenizer

    from pipeline.train.chat import prompt_text, resolve
    from pipeline.train.data import encode_chat

    tok = AutoTokenizer.from_pretrained(tiny["gpt_neox"])
    assert (resolve(tok, "auto"), resolve(tok, "auto", "rwkv"), resolve(tok, "chat-en", "rwkv")) == ("chat-ja", "rwkv", "chat-en")
    tok.chat_template = CHATML
    assert resolve(tok, "auto") == "tokenizer"
    on, off = learned(tok, encode_chat(tok, "tokenizer", DIALOGUE, 1024))
    assert on == "まっすぐ行って右です。<|im_end|>\nどういたしまして。<|im_end|>\n<|endoftext|>"
    assert off.startswith("<|im_start|>system\nあなたは") and off.endswith("<|im_start|>assistant\n")
    assert prompt_text(tok, "tokenizer", DIALOGUE[:2]).endswith("駅はどこですか？<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def ja_chat_build(tmp_path_factory, prefect_harness):
    """A real build of the seven Japanese OASST editor conversations."""
    from conftest import one_source_build

    tmp = tmp_path_factory.mktemp("jachat")
    shutil.copy(EDITOR, tmp / "ja.json")
    return one_source_build(tmp, "jachat", {"name": "ja", "kind": "oasst", "path": "ja.json", "license": "apache-2.0"})


@pytest.mark.parametrize("arch", ["gpt_neox", "llama", "rwkv"])
def test_chat_lora_loss_falls_and_adapter_changes_logits(tiny, ja_chat_build, tmp_path, arch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from pipeline.train.trainer import train

    spec = cpu_train_spec(micro_batch=2, max_steps=30, logging_steps=10, sample_generations=1)  # auto: rwkv for RWKV
    run = train(spec, tmp_path, str(tiny[arch]), ja_chat_build)
    log = [json.loads(x) for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in log]
    assert [x["step"] for x in log] == [10, 20, 30]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.9 * losses[0], losses
    assert len(run["samples"]) == 1
    base = AutoModelForCausalLM.from_pretrained(tiny[arch]).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        after = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()(input_ids=ids).logits
    assert not torch.allclose(before, after, atol=1e-4)


# --- malformed trees: every message still lands in exactly one row ----------------------------------------

IDS = ["a", "b", "c", "d", "e"]
_message = st.fixed_dictionaries(
    {
        "message_id": st.sampled_from(IDS),
        "parent_id": st.none() | st.sampled_from(IDS),
        "message_tree_id": st.sampled_from(["t1", "t2"]),
        "role": st.sampled_from(["prompter", "assistant", "bot"]),
        "text": st.text(max_size=5) | st.none(),
        "rank": st.none() | st.integers(0, 2),
        "deleted": st.booleans(),
        "review_result": st.none() | st.booleans(),
    }
)


@seed(20261203)
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=st.lists(_message, max_size=8), branches=st.sampled_from(["best", "all"]))
def test_oasst_flat_accounts_every_line_of_any_file(tmp_path, msgs, branches):
    f = tmp_path / "m.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs), encoding="utf-8")
    rows = read_all("oasst", f, branches=branches)
    assert len({r["id"] for r in rows}) == len(rows)
    # a reject holds its own line; a conversation its messages (best: each message once; all: at least once)
    lines = Counter(r["source_index"] for r in rows if "reason" in r)
    covered = Counter()
    for r in rows:
        if "messages" in r:
            covered.update(json.loads(r["meta"])["message_ids"])
    in_conv = sum(covered.values())
    if branches == "best":
        assert sum(lines.values()) + in_conv == len(msgs)
    else:
        assert sum(lines.values()) + len(set(covered)) <= len(msgs) <= sum(lines.values()) + in_conv
    assert all(v == 1 for v in lines.values())


# --- persona: instruction backtranslation ----------------------------------------------------------------


def test_backtranslation_writes_the_instruction_each_post_answers(tmp_path, prefect_harness):
    from testkit.tiny_models import make_model, teach

    from flows.build import build_flow
    from flows.generate import generate_flow
    from pipeline.generate.templates import ask_instruction

    archive = tmp_path / "archive"
    archive.mkdir()
    text = (SAMPLES / "tweets_archive" / "data" / "tweets.js").read_text(encoding="utf-8")
    head, _, array = text.partition("= ")
    singles = {p["id_str"] for p in provenance() if p["kind"] == "single"}
    keep = [t for t in json.loads(array) if t["tweet"]["id_str"] in singles][:6]  # six posts on their own
    (archive / "tweets.js").write_text(head + "= " + json.dumps(keep, ensure_ascii=False), encoding="utf-8")
    source = {"name": "me", "kind": "persona", "path": "archive/tweets.js", "license": "public-domain"}
    build_recipe = tmp_path / "build.yaml"
    build_recipe.write_text(yaml.safe_dump({"name": "me", "sources": [source], "clean": {"min_chars_text": 10},
                                            "split": {"validation": 0.0}}, allow_unicode=True), encoding="utf-8")
    build_flow(str(build_recipe), str(tmp_path / "posts"))
    posts = table(tmp_path / "posts", "text")
    assert len(posts) == 6
    # a tiny model taught what two posts answer, and to loop on a third
    wanted = {posts[0]["id"]: "人生について一言お願いします。", posts[1]["id"]: "古典について教えてください。"}
    lessons = [ask_instruction(p["text"], "dolly", "ja") + wanted[p["id"]] + "\n### End" for p in posts[:2]]
    lessons.append(ask_instruction(posts[2]["text"], "dolly", "ja") + "こんちには。" + "こんにちは。" * 12)
    model = tmp_path / "model"
    make_model(model, [p["text"] for p in posts] + lessons, "gpt_neox", hidden=64, heads=2, layers=2, vocab_size=512)
    teach(model, lessons, steps=120)
    recipe = tmp_path / "bt.yaml"
    generate = {"model": str(model), "backend": "transformers", "task": "backtranslate", "posts": "posts",
                "language": "ja", "batch_size": 4, "sampling": {"temperature": 0.0, "max_new_tokens": 32}}
    recipe.write_text(yaml.safe_dump({"name": "bt", "generate": generate}, allow_unicode=True), encoding="utf-8")
    manifest = generate_flow(str(recipe), str(tmp_path / "bt"))
    rows = table(tmp_path / "bt", "generated")
    rejects = table(tmp_path / "bt", "rejects")
    assert manifest["counts"]["generate.bt"]["read"] == 6 == len(rows) + len(rejects)  # every post asked once
    got = {json.loads(r["meta"])["answer_of"]: r for r in rows}
    for pid, instruction in wanted.items():
        r = got[pid]
        post = next(p for p in posts if p["id"] == pid)
        assert (r["instruction"], r["input"], r["output"], r["task"]) == (instruction, "", post["text"], "backtranslated")
        assert r["license"] == "public-domain" and json.loads(r["generation"])["prompt"] == "backtranslate"
    loop = next(r for r in rejects if json.loads(r["record"])["meta"]["answer_of"] == posts[2]["id"])
    assert (loop["reason"], json.loads(loop["record"])["instruction"]) == ("repetition_loop", "こんちには。こんにちは。")
    # a build takes the pairs back as a `generated` source: the posts' licence and origin stay
    from pipeline.sources import READERS
    from schemas.recipe import SourceSpec

    [shard] = (tmp_path / "bt" / "generated").glob("*.parquet")
    back = list(READERS["generated"](shard, shard.name, SourceSpec(name="g", kind="generated", path="x", license="mit"), tmp_path))
    assert {(r["license"], r["task"]) for r in back} == {("public-domain", "backtranslated")}
    assert {json.loads(r["meta"])["answer_of"] for r in back} == set(got)  # every kept pair, its post named


def test_generate_task_needs_its_input():
    from pathlib import Path

    from schemas.recipe import RecipeError, parse_recipe

    for generate, want in [
        ({"model": "m"}, "generate.task self-instruct needs seed_tasks"),
        ({"model": "m", "task": "backtranslate"}, "generate.task backtranslate needs posts (a build output directory)"),
    ]:
        with pytest.raises(RecipeError) as err:
            parse_recipe({"name": "x", "generate": generate}, Path("r.yaml"))
        assert str(err.value) == f"r.yaml: recipe key 'generate': {want}"
