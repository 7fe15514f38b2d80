"""--variants: the spec syntax, checks against the registry, full counterparts of fast variants."""

from __future__ import annotations

import pytest

from xai.errors import XAIError
from xai.evaluation.variants import full_counterparts, parse_variants


def test_specs_parse_to_options():
    vs = parse_variants(
        "scorecam:layer=encoder.layer4,baseline=zero scorecam:maps=100,select=random scorecam gradcam:layer=decoder"
    )
    assert [v.label for v in vs] == [
        "scorecam:layer=encoder.layer4,baseline=zero",
        "scorecam:maps=100,select=random",
        "scorecam",
        "gradcam:layer=decoder",
    ]
    assert dict(vs[0].overrides) == {"target_layer": "encoder.layer4", "baseline": "zero"}
    assert dict(vs[1].overrides) == {"max_activation_maps": 100, "channel_selection": "random"} and vs[1].fast
    assert full_counterparts(vs) == {"scorecam:maps=100,select=random": "scorecam"}
    assert parse_variants(["scorecam:maps=all"])[0].overrides == (("max_activation_maps", None),)
    by_name = parse_variants("scorecam:max_activation_maps=3,score_reduction=mean")[0]  # a field's name works too
    assert dict(by_name.overrides) == {"max_activation_maps": 3, "score_reduction": "mean"} and by_name.fast


@pytest.mark.parametrize(
    "spec,message",
    [
        ("gradcam:baseline=zero", "Grad-CAM takes no 'baseline'"),
        (
            "scorecam:colour=red",
            "Score-CAM takes no 'colour'; its keys: region, score, score_reduction, contrast, width, junction, layer, ",
        ),
        ("scorecam:weights=max", "unknown weights 'max': choose one of centred, raw, softmax"),
        ("scorecam:maps=many", "maps must be a whole number"),
        ("scorecam:layer", "is not key=value"),
        ("nocam", "unknown method 'nocam'"),
        ("scorecam scorecam", "given twice: scorecam"),
    ],
)
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(XAIError, match=message):
        parse_variants(spec)
