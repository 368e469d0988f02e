from django.utils.html import escape

from .conftest import make_item, make_prediction


def test_the_page_shows_every_experts_rating_and_abstentions(alice_client, champion):
    item = make_item()
    make_prediction(
        item, champion, experts={"tag_rules": 8, "lstm": 2, "image": None}, voter=8, mlp=4
    )
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    for text in ("tag_rules", "lstm", "image", "abstained", "voter", "MLP"):
        assert text in page
    assert 'data-hotkey="Enter"' in page and "Accept <strong>X</strong>" in page


def test_the_page_says_which_models_rate_lower_and_by_how_many_levels(alice_client, champion):
    item = make_item()
    make_prediction(item, champion, experts={"lstm": 16, "minilm": 2}, voter=2, mlp=2)
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert "lstm rates XXX, the suggestion is PG13: 3 levels lower" in page
    assert "3 levels below XXX" in page  # minilm, the voter and the MLP


def test_the_page_says_which_experts_the_mlp_read(alice_client, champion):
    item = make_item()
    make_prediction(
        item,
        champion,
        experts={"tag_rules": 2, "lstm": 2, "image": 8, "lstm_tags": None},
        mlp_experts=["tag_rules", "lstm"],
    )
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert "MLP read: tag_rules, lstm" in page
    # The image expert spoke, but the MLP was not trained with it: marked on its row only.
    assert page.count("not read by the MLP") == 1
    image_row = page[page.index("<td>image") : page.index("</tr>", page.index("<td>image"))]
    assert "not read by the MLP" in image_row


def test_the_page_says_prediction_pending_without_one(alice_client):
    make_item()
    assert b"Prediction pending" in alice_client.post("/review/claim/", follow=True).content


def test_prompts_and_tags_are_escaped(alice_client):
    attack = "<script>alert(1)</script>"
    make_item(prompt=attack, negative_prompt=attack, tags=[[attack, 0.9]])
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert attack not in page
    assert page.count(escape(attack)) == 3


def test_a_prompt_only_item_says_so(alice_client):
    make_item(image=False)
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert "Prompt-only item, no image" in page
    assert "<img" not in page


def test_an_item_with_an_image_shows_it(alice_client):
    item = make_item(image=True)
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert f'src="/review/items/{item.uid}/image/"' in page


def test_the_page_shows_the_split_and_the_queue_size(alice_client):
    make_item(split="test")
    make_item()
    make_item()
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert 'class="split split-test"' in page
    assert "2 more waiting" in page


def test_a_long_queue_is_counted_only_up_to_a_limit(alice_client, monkeypatch):
    # The count stops past the limit: a million open items are not counted on every view.
    monkeypatch.setattr("moderation.review.selectors.QUEUE_SIZE_SHOWN", 2)
    monkeypatch.setattr("moderation.review.views.QUEUE_SIZE_SHOWN", 2)
    for _ in range(5):
        make_item()
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert "2+ more waiting" in page


def test_the_hotkeys_are_shown_on_the_page(alice_client):
    make_item()
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    for key in ("1", "2", "3", "4", "5", "b", "s", "u"):
        assert f'data-hotkey="{key}"' in page
        assert f"<kbd>{key}</kbd>" in page


def test_an_htmx_request_gets_only_the_panel(alice_client):
    make_item()
    response = alice_client.get("/review/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="review-panel"')
    assert "<html" not in body


def test_a_decision_over_htmx_swaps_in_the_next_item(alice_client):
    first, second = make_item(), make_item()
    alice_client.post("/review/claim/", follow=True)
    response = alice_client.post(
        f"/review/{first.uid}/decide/", {"level": "1"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.context["item"] == second
    assert "<html" not in response.content.decode()


def test_an_empty_queue_polls_for_new_items(alice_client):
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert "The queue is empty" in page
    assert 'hx-trigger="every 10s"' in page


def test_htmx_is_served_from_our_static_files(alice_client):
    page = alice_client.post("/review/claim/", follow=True).content.decode()
    assert 'src="/static/vendor/htmx/htmx.min.js"' in page
    assert "unpkg" not in page and "cdn" not in page.lower()


def explained(prompt: str, word: str, *, tag: str, level: int = 8) -> dict:
    """A stored explanation in which one expert rates `level` for `word` and `tag`."""
    start = prompt.index(word)
    return {
        "version": 1,
        "partial": False,
        "skipped": [],
        "experts": {
            "ngram": {
                "rating": level,
                "method": "linear",
                "top": [
                    {"word": word, "weight": 1.5, "spans": [[start, start + len(word)]]},
                    {"tag": tag, "weight": 0.4},
                ],
            },
            "tag_rules": {"rating": 1, "method": "rules", "top": []},
        },
    }


def test_the_words_and_tags_that_pushed_the_rating_up_are_highlighted(alice_client, champion):
    prompt = "a woman on a beach, nude, at sunset"
    item = make_item(prompt=prompt, tags=[["nipples", 0.8], ["beach", 0.9]])
    make_prediction(
        item, champion, experts={"ngram": 8}, explanation=explained(prompt, "nude", tag="nipples")
    )
    page = alice_client.post("/review/claim/", follow=True).content.decode()

    assert (
        'a woman on a beach, <mark class="why rating-x" title="pushed toward X">nude</mark>' in page
    )
    assert '<li class="tag why rating-x" title="pushed toward X">nipples' in page
    assert '<li class="tag">beach' in page
    assert "What pushed the ratings up" in page
    assert "n-gram weights toward the rating" in page and "+1.50" in page


def test_highlighted_prompts_and_tags_stay_escaped(alice_client, champion):
    attack = "<script>alert(1)</script>"
    prompt = f"{attack} nude {attack}"
    item = make_item(prompt=prompt, tags=[[attack, 0.9]])
    make_prediction(
        item,
        champion,
        experts={"ngram": 16},
        explanation=explained(prompt, "nude", tag=attack, level=16),
    )
    page = alice_client.post("/review/claim/", follow=True).content.decode()

    assert attack not in page
    assert f'{escape(attack)} <mark class="why rating-xxx"' in page
    assert f'<li class="tag why rating-xxx" title="pushed toward XXX">{escape(attack)}' in page


def test_a_span_that_does_not_hold_its_word_is_not_highlighted(alice_client, champion):
    item = make_item(prompt="a cat on a sofa")
    explanation = explained("nude", "nude", tag="cat")  # offsets of another prompt
    make_prediction(item, champion, experts={"ngram": 8}, explanation=explanation)
    page = alice_client.post("/review/claim/", follow=True).content.decode()

    assert '<pre class="prompt">a cat on a sofa</pre>' in page


def test_the_page_says_which_experts_word_reasons_were_left_out(alice_client, champion):
    prompt = "nude"
    explanation = {**explained(prompt, "nude", tag="cat"), "partial": True, "skipped": ["text"]}
    make_prediction(
        make_item(prompt=prompt), champion, experts={"ngram": 8}, explanation=explanation
    )
    page = alice_client.post("/review/claim/", follow=True).content.decode()

    assert "Word-by-word reasons of text were left out" in page
