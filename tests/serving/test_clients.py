import base64
import json
import urllib.request

import numpy as np
import pytest
from helpers import encode_image
from helpers import python_captions

from sat_keras.serving import CaptionClient
from sat_keras.serving import CaptionServiceError

IMAGES = [encode_image("jpeg", 60, 80, seed=1), encode_image("png", 32, 32, 4, seed=2),
          encode_image("gif", 45, 30, seed=3)]


def client(server, protocol, **kwargs):
    port = server.port if protocol == "grpc" else server.rest_port
    return CaptionClient(f"127.0.0.1:{port}", server.model_name, protocol=protocol, **kwargs)


@pytest.fixture(scope="module")
def python_result(exported_model, tmp_path_factory):
    return python_captions(exported_model[0], IMAGES, tmp_path_factory.mktemp("images"))


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_served_captions_equal_model_caption(local_server, python_result, protocol):
    with client(local_server, protocol) as caption_client:
        result = caption_client.caption(IMAGES)
    assert result["captions"] == python_result["captions"]
    np.testing.assert_allclose(result["scores"], python_result["scores"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result["token_ids"], python_result["token_ids"])
    assert np.asarray(result["attention_weights"]).shape == (3, 6, 64)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_image_files_and_features_can_be_captioned(local_server, exported_model, tmp_path,
                                                   protocol):
    path = tmp_path / "image.png"
    path.write_bytes(IMAGES[1])
    with client(local_server, protocol, version=1) as caption_client:
        assert caption_client.caption([str(path)])["captions"] == caption_client.caption(
            [IMAGES[1]])["captions"]
        features = np.random.default_rng(0).normal(size=(2, 64, 8)).astype("float32")
        expected = exported_model[0].caption(features=features, beam_size=2, max_length=6)
        assert caption_client.caption_features(features)["captions"] == expected["captions"]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_metadata_lists_both_signatures(local_server, protocol):
    with client(local_server, protocol) as caption_client:
        signatures = caption_client.metadata()
    assert set(signatures) == {"serving_default", "caption_features"}
    default = signatures["serving_default"]
    assert default["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert set(default["outputs"]) == {"captions", "scores", "token_ids", "attention_weights"}


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_a_bad_image_names_its_index_and_the_server_keeps_serving(local_server, protocol):
    with client(local_server, protocol) as caption_client:
        with pytest.raises(CaptionServiceError) as error:
            caption_client.caption([IMAGES[0], IMAGES[1][:-40]])
        assert error.value.code == "INVALID_ARGUMENT"
        assert "image_bytes[1]: truncated" in error.value.message
        assert len(caption_client.caption(IMAGES)["captions"]) == 3


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_unknown_models_versions_and_signatures_are_refused(local_server, protocol):
    cases = [({"model_name": "nope"}, "NOT_FOUND"), ({"version": 7}, "NOT_FOUND"),
             ({"signature": "nope"}, "INVALID_ARGUMENT")]
    for overrides, code in cases:
        settings = {"model_name": local_server.model_name, **overrides}
        port = local_server.port if protocol == "grpc" else local_server.rest_port
        with CaptionClient(f"127.0.0.1:{port}", protocol=protocol, **settings) as caption_client:
            with pytest.raises(CaptionServiceError) as error:
                caption_client.caption(IMAGES[:1])
        assert error.value.code == code, overrides


def rest_post(server, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.rest_port}/v1/models/{server.model_name}:predict",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_rest_row_format_as_tf_serving_documents_it(local_server, python_result):
    instances = [{"b64": base64.b64encode(data).decode()} for data in IMAGES]
    predictions = rest_post(local_server, {"instances": instances})["predictions"]
    assert [p["captions"] for p in predictions] == python_result["captions"]
    named = [{"image_bytes": instance} for instance in instances]
    assert rest_post(local_server, {"signature_name": "serving_default",
                                    "instances": named})["predictions"] == predictions


def test_rest_model_status(local_server):
    url = f"http://127.0.0.1:{local_server.rest_port}/v1/models/{local_server.model_name}"
    with urllib.request.urlopen(url, timeout=30) as response:
        status = json.loads(response.read())
    assert status["model_version_status"][0]["state"] == "AVAILABLE"


def test_unreachable_servers_are_retried_then_reported(monkeypatch):
    import sat_keras.serving.client as client_module

    sleeps = []
    monkeypatch.setattr(client_module.time, "sleep", sleeps.append)
    for protocol in ("grpc", "rest"):
        with CaptionClient("127.0.0.1:1", "m", protocol=protocol, retries=2, timeout=2,
                           backoff=0.1) as caption_client:
            with pytest.raises(CaptionServiceError) as error:
                caption_client.caption(IMAGES[:1])
        assert error.value.code == "UNAVAILABLE"
    assert sleeps == [0.1, 0.2, 0.1, 0.2]


def test_refused_requests_are_not_retried(local_server, monkeypatch):
    import sat_keras.serving.client as client_module

    sleeps = []
    monkeypatch.setattr(client_module.time, "sleep", sleeps.append)
    with client(local_server, "grpc", retries=3) as caption_client:
        with pytest.raises(CaptionServiceError):
            caption_client.caption([b""])
    assert sleeps == []


def test_unknown_protocols_and_inputs_are_refused():
    with pytest.raises(ValueError, match="protocol"):
        CaptionClient("localhost:8500", "m", protocol="http2")
    with pytest.raises(TypeError, match="bytes or a file path"):
        CaptionClient("localhost:8500", "m").caption([np.zeros((4, 4, 3))])


def test_both_protocols_return_the_n_best_of_an_n_best_export(exported_model, tmp_path):
    from sat_keras.export import export_captioner
    from sat_keras.serving import LocalServer

    model = exported_model[0]
    export_captioner(model, str(tmp_path / "nbest" / "1"), beam_size=2, max_length=6,
                     num_captions=2)
    features = np.random.default_rng(3).normal(size=(2, 64, 8)).astype("float32")
    expected = model.caption(features=features, beam_size=2, max_length=6, num_captions=2)
    with LocalServer(str(tmp_path / "nbest"), port=0, rest_port=0, host="127.0.0.1") as server:
        for protocol in ("grpc", "rest"):
            with client(server, protocol) as caption_client:
                result = caption_client.caption_features(features)
            assert result["nbest_captions"] == expected["captions"]
            assert result["captions"] == [row[0] for row in expected["captions"]]
            np.testing.assert_allclose(result["nbest_scores"], expected["scores"], rtol=1e-5)
            assert np.asarray(result["nbest_attention_weights"]).shape == (2, 2, 6, 64)
