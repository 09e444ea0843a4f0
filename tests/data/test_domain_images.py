"""The dataset's own description: what a run prints about its data before training."""

from stargan_keras.data.domain_images import DomainImages, ImageSource


def _dataset(domain_names, train_counts, val_counts) -> DomainImages:
    def sources(counts):
        return [ImageSource(paths=tuple(f"{i}.png" for i in range(n))) for n in counts]

    return DomainImages("folder", list(domain_names), {"train": sources(train_counts), "val": sources(val_counts)})


def test_description_lists_each_splits_images_per_domain():
    lines = _dataset(["cat", "dog"], [5, 7], [1, 2]).describe().splitlines()
    assert lines == ["folder: 2 domains", "  train  cat 5, dog 7", "  val    cat 1, dog 2"]


def test_description_of_many_domains_fits_the_width_with_totals():
    names = [f"domain_with_a_long_name_{i:02d}" for i in range(12)]
    lines = _dataset(names, range(10, 22), [3] * 12).describe(width=100).splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[1:] == ["  train  186 images, 10 to 21 per domain", "  val    36 images, 3 to 3 per domain"]
