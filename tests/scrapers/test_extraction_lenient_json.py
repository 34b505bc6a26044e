from scrapers.extraction.lenient_json import parse_lenient_json


def test_valid_json() -> None:
    assert parse_lenient_json('{"a": [1, 2]}') == [{"a": [1, 2]}]


def test_trailing_commas_and_comments() -> None:
    text = '{\n // theme v2\n "a": [1, 2,], /* x */ "b": {"c": 1,},\n}'
    assert parse_lenient_json(text) == [{"a": [1, 2], "b": {"c": 1}}]


def test_raw_newlines_inside_strings() -> None:
    assert parse_lenient_json('{"d": "line one\nline two"}') == [{"d": "line one\nline two"}]


def test_html_entities_in_place_of_quotes() -> None:
    assert parse_lenient_json("{&quot;name&quot;: &quot;Tea &amp; Co&quot;}") == [
        {"name": "Tea & Co"}
    ]


def test_cdata_and_comment_wrappers() -> None:
    text = '//<![CDATA[\n{"a": 1}\n//]]>'
    assert parse_lenient_json(text) == [{"a": 1}]
    assert parse_lenient_json('<!-- {"a": 2} -->') == [{"a": 2}]


def test_several_objects_in_one_script() -> None:
    assert parse_lenient_json('{"a": 1}\n{"b": 2}') == [{"a": 1}, {"b": 2}]
    assert parse_lenient_json('{"a": 1},{"b": 2}') == [{"a": 1}, {"b": 2}]


def test_truncated_document_is_closed() -> None:
    assert parse_lenient_json('{"a": {"b": "http://x.example/y", "c": [1, 2') == [
        {"a": {"b": "http://x.example/y", "c": [1, 2]}}
    ]


def test_url_slashes_inside_strings_are_not_comments() -> None:
    assert parse_lenient_json('{"u": "https://a.example//b",}') == [{"u": "https://a.example//b"}]


def test_nothing_recoverable() -> None:
    assert parse_lenient_json("") == []
    assert parse_lenient_json("window.dataLayer = [];") == []
